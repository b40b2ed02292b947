"""What the model back ends share around ``model.generate``: the verdict-word probe and padding.

Confidence (docs/architecture.md, Verdicts) comes from the model's own probabilities, not from its text: at
the generated position where the verdict word starts, the softmax over the vocabulary gives
P(first token of ERROR) and P(first token of CORRECT); renormalised over the two, the confidence
is the probability of the word the model actually wrote. Spelling variants (``ERROR``, ``Error``,
``error``, with a leading space or markdown ``**``) are summed, each at the first token where its
ERROR and CORRECT spellings differ. When no verdict word starts in the first ``probe_steps``
generated tokens the first position is used; an UNPARSEABLE answer has confidence ``None``
(it has no verdict word whose probability could be reported).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

VERDICT_WORDS = ("ERROR", "CORRECT")
_PREFIXES = ("", " ", "**", "\n")


def verdict_token_ids(tokenizer: Any) -> tuple[list[int], list[int]]:
    """Token ids that begin ERROR and CORRECT (all spellings), with shared ids removed.

    Raises:
        ValueError: the tokenizer cannot tell the two words apart at any position.
    """
    err: set[int] = set()
    cor: set[int] = set()
    for prefix in _PREFIXES:
        for form in (str.upper, str.title, str.lower):
            e = tokenizer.encode(prefix + form("ERROR"), add_special_tokens=False)
            c = tokenizer.encode(prefix + form("CORRECT"), add_special_tokens=False)
            k = 0
            while k < min(len(e), len(c)) and e[k] == c[k]:
                k += 1
            if k < len(e) and k < len(c):
                err.add(int(e[k]))
                cor.add(int(c[k]))
    shared = err & cor
    err, cor = err - shared, cor - shared
    if not err or not cor:
        raise ValueError("the tokenizer does not separate ERROR from CORRECT in any spelling")
    return sorted(err), sorted(cor)


class VerdictProbe:
    """Records log P(verdict tokens) at the first ``steps`` generated positions.

    Attached to the model's output layer as a forward hook (``attached(model)``), it reads the raw
    next-token logits of each decoding step and changes nothing, so greedy decoding is exactly
    what it would be without it; it costs one log-softmax per probed step. (As a transformers
    logits processor it would work too, ``__call__``, but generate inspects every processor's
    signature at every step: about 2 ms per case, 10% of a tiny model's generation.)
    """

    def __init__(
        self, error_ids: Sequence[int], correct_ids: Sequence[int], steps: int = 4
    ) -> None:
        self.error_ids = list(error_ids)
        self.correct_ids = list(correct_ids)
        self.ids = self.error_ids + self.correct_ids
        self.steps = steps
        self.records: list[Any] = []  # per step: [batch, len(ids)] log-probs
        self._index: Any = None

    def reset(self) -> None:
        self.records = []

    def record(self, scores: Any) -> None:
        """Record one step's next-token logits ``[batch, vocab]`` (while steps remain)."""
        if len(self.records) < self.steps:
            import torch

            if self._index is None or self._index.device != scores.device:
                self._index = torch.tensor(self.ids, device=scores.device)
            logp = torch.log_softmax(scores.detach().float(), dim=-1)
            self.records.append(logp.index_select(-1, self._index))

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        """The logits-processor interface: record, return the scores unchanged."""
        self.record(scores)
        return scores

    @contextmanager
    def attached(self, model: Any) -> Iterator[VerdictProbe]:
        """Record the last position's logits of every forward of ``model``'s output layer."""
        head = model.get_output_embeddings()
        if head is None:
            raise ValueError("the model has no output layer to probe")

        def hook(_module: Any, _inputs: Any, output: Any) -> None:
            self.record(output[:, -1, :] if output.dim() == 3 else output)
            if len(self.records) >= self.steps:
                handle.remove()  # the later steps run without a hook (torch's fast path)

        handle = head.register_forward_hook(hook)
        try:
            yield self
        finally:
            handle.remove()

    def error_probability(self, completion_ids: Any) -> list[float | None]:
        """P(ERROR) / (P(ERROR) + P(CORRECT)) per row, at the position its verdict word starts."""
        import torch

        if not self.records:
            return [None] * int(completion_ids.shape[0])
        logp = torch.stack(self.records, dim=1)  # [batch, steps, ids]
        cand = set(self.ids)
        n_err = len(self.error_ids)
        out: list[float | None] = []
        for b in range(logp.shape[0]):
            pos = 0
            for j in range(min(logp.shape[1], completion_ids.shape[1])):
                if int(completion_ids[b, j]) in cand:
                    pos = j
                    break
            p = logp[b, pos].exp()
            pe, pc = float(p[:n_err].sum()), float(p[n_err:].sum())
            out.append(pe / (pe + pc) if pe + pc > 0 else 0.5)
        return out


def label_confidence(p_error: float | None, label: str) -> float | None:
    """The confidence of ``label`` given P(ERROR); None for UNPARSEABLE or no probability."""
    if p_error is None or label not in VERDICT_WORDS:
        return None
    return p_error if label == "ERROR" else 1.0 - p_error


def left_pad(rows: Sequence[Sequence[int]], pad_value: int) -> tuple[Any, Any]:
    """Left-pad token rows into ``(ids [B, T], attention_mask [B, T])`` long tensors."""
    import torch

    width = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), width), pad_value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r):
            ids[i, width - len(r) :] = torch.as_tensor(list(r), dtype=torch.long)
            mask[i, width - len(r) :] = 1
    return ids, mask


def unpad_rows(ids: Any, mask: Any) -> list[list[int]]:
    """The real (unmasked) tokens of each row of a padded batch."""
    return [
        [int(t) for t, m in zip(row, mrow, strict=True) if int(m)]
        for row, mrow in zip(ids, mask, strict=True)
    ]


def cut_completions(completions: Any, eos_ids: Sequence[int], pad_id: int) -> Any:
    """Completion ids with everything after the first end-of-sequence token set to ``pad_id``."""
    import torch

    out = completions.clone()
    if out.numel() == 0 or not eos_ids:
        return out
    is_eos = torch.zeros_like(out, dtype=torch.bool)
    for e in eos_ids:
        is_eos |= out == e
    after = (is_eos.long().cumsum(dim=1) - is_eos.long()) > 0
    out[after] = pad_id
    return out
