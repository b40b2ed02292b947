"""The brief supervised fit of the demo models, so the demo's verdicts mean something.

``train_demo_models(cases, out_dir, progress)`` trains on the ``train`` split and registers two
clip-llm versions in the registry at ``out_dir``, so every case has an A and a B to compare:

- ``demo-v1``: the language model alone, trained on the case text (no image description). Like
  the text heuristic it can learn treatment mismatches but cannot see an image-only error.
- ``demo-v2``: the tiny CLIP is first fitted to tell each modality's findings apart (cross-entropy
  of image/text similarities over the modality's ``clip_text``, both towers; 64 images a step,
  each mirrored half the time and moved by up to 8% of its side; cosine-decayed rate; the
  checkpoint with the lowest loss on the val images is kept), then the language model is
  trained on prompts that carry the CLIP's own description of the image, ending with the
  encoder's call on the stated finding at a threshold chosen on val (``stated_call``). A share of
  those descriptions (``call_mix``) is mixed toward another finding while the call stays true, so
  the LM learns that the call, not the top finding, decides: the kept CLIP knows its training
  images, and on them the two almost never disagree (on new images they do).

Targets are gold verdicts built from the ground truth and the knowledge table (``gold_verdict``).
Besides the train cases themselves, each language model learns from ``knowledge_examples``: every
training image with an accepted and a not accepted treatment of its finding, and (demo-v2) with a
finding it does not show: the knowledge table a real model brings, taught on the train split only
(without them demo-v2 missed 4 of 28 test mismatches it could read in the text, seed 0).

Only ``train`` is fitted; ``val`` picks every checkpoint (the CLIP's, each LM's) and was used to
choose the settings; ``review`` (the clinicians' cases) and ``test`` are never looked at.
Confidence (the renormalised probability of the verdict word, ``core.models.backends._generation``) is
kept honest two ways: the verdict word's target is smoothed between the two words
(``verdict_smoothing``), and each language model keeps the checkpoint with the lowest validation
log loss of that probability (``eval_every``). Without either (and with the verdict token weighted
5x), demo-v2 said > 0.99 on 82 of the demo's 114 test cases, right or wrong (docs/models.md).
The verdict token weighs 3x the reason's tokens: at 1x the LM sometimes wrote
"CORRECT - X is not an accepted treatment for Y" (the reason right, the word, decided first, not).
Everything runs in a temporary folder beside the registry and is moved in only on success.
"""

from __future__ import annotations

import math
import random
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from core.cases.records import Case
from core.clinical.knowledge import Finding, KnowledgeTable, default_knowledge
from core.models.registry import ModelCard, Registry
from core.runtime.progress import Progress
from core.training.encoder import augment

DESCRIPTION_CHECKS = ("late", "matched", "final")
# Cases whose stated finding is the one the image shows (CLIP can learn from these).
_IMAGE_SHOWS_FINDING = ("none", "treatment_mismatch")


@dataclass
class DemoTrainConfig:
    """How long and how hard the demo models train."""

    seed: int = field(default=0, metadata={"help": "seed for initialisation and batch order"})
    # 1600, not 800: at 800 every seed's val loss was still falling at the last check and the
    # last step was the one kept; 1600 halved it on seeds 0 and 1 (docs/models.md).
    clip_steps: int = field(default=1600, metadata={"help": "optimiser steps for the tiny CLIP"})
    lm_steps: int = field(default=1500, metadata={"help": "optimiser steps per language model"})
    batch_size: int = field(default=16, metadata={"help": "cases per step"})
    clip_lr: float = field(default=1e-3, metadata={"help": "CLIP learning rate (AdamW)"})
    clip_batch: int = field(default=64, metadata={"help": "training images per CLIP step"})
    clip_shift: float = field(
        default=0.08,
        metadata={
            "help": "CLIP augmentation: each training image is moved by up to this share of its "
            "side, at random (a lesion may sit anywhere), as well as mirrored half the time"
        },
    )
    lm_lr: float = field(default=3e-3, metadata={"help": "language model learning rate (AdamW)"})
    verdict_weight: float = field(
        default=3.0,
        metadata={
            "help": "loss weight of the verdict word's token (the decision); above 1 it saturates sooner"
        },
    )
    verdict_smoothing: float = field(
        default=0.1,
        metadata={
            "help": "label smoothing of the verdict word: this share of the target goes to the other word"
        },
    )
    eval_every: int = field(
        default=100,
        metadata={
            "help": "steps between checks on the val split; the LM checkpoint with the lowest val loss is kept"
        },
    )
    description_checks: str = field(
        default="final",
        metadata={
            "help": "image descriptions the LM learns from: 'late': each time a training image is drawn, "
            "the description of a random CLIP check from a third of its training on (so it also sees the "
            "CLIP unsure or wrong, as on new images); 'matched': the check whose training-image loss is "
            "closest to the kept CLIP's val loss; 'final': the kept CLIP's own (near-perfect on its "
            "training images)"
        },
    )
    knowledge_examples: bool = field(
        default=True,
        metadata={
            "help": "also teach the LM the knowledge table: each training image with an accepted and a "
            "not accepted treatment of its finding, and (demo-v2) with a finding it does not show"
        },
    )
    balanced_knowledge: bool = field(
        default=True,
        metadata={
            "help": "deal the knowledge examples' treatments and other findings from shuffled "
            "decks, so every (finding, treatment) pair is taught about equally often (False: "
            "independent random draws, as before)"
        },
    )
    stated_call: bool = field(
        default=True,
        metadata={
            "help": "demo-v2's image description also gives the encoder's call on the stated "
            "finding (seen or not seen), at the one-threshold rule's threshold chosen on val "
            "(core.models.clip_scorer.choose_stated_threshold)"
        },
    )
    call_mix: float = field(
        default=0.3,
        metadata={
            "help": "demo-v2: share of the LM's training draws whose image scores are mixed "
            "toward a random finding of the modality (weight drawn from 0 to 1), kept only when "
            "the encoder's call on the stated finding still says what the training case's image "
            "shows: the kept CLIP knows its training images, so without this the LM rarely sees "
            "the top finding and the call disagree, and on new images it follows the top finding "
            "where the call (its threshold chosen on val) is right; with description_checks 'final' and "
            "stated_call; 0 turns it off"
        },
    )
    lm_restarts: int = field(
        default=2,
        metadata={
            "help": "demo-v2: train its language model this many times (other initial weights "
            "and batch order, the same examples) and keep the one with the lowest val log loss; "
            "1: once (without val cases it is trained once)"
        },
    )
    names: tuple[str, str] = field(
        default=("demo-v1", "demo-v2"), metadata={"help": "version names"}
    )
    text_only: bool = field(
        default=False,
        metadata={
            "help": "train and register only the text-only version (names[0]), no image encoder: "
            "the first run's quick model (app/cli/demo.py)"
        },
    )

    def __post_init__(self) -> None:
        if (
            min(self.clip_steps, self.lm_steps, self.batch_size, self.clip_batch, self.eval_every)
            <= 0
        ):
            raise ValueError("steps, batch sizes and eval_every must be positive")
        if self.description_checks not in DESCRIPTION_CHECKS:
            raise ValueError(f"description_checks must be one of {DESCRIPTION_CHECKS}")
        if self.clip_lr <= 0 or self.lm_lr <= 0 or self.verdict_weight <= 0:
            raise ValueError("learning rates and verdict_weight must be positive")
        if not 0.0 <= self.call_mix <= 1.0:
            raise ValueError("call_mix must be in [0, 1]")
        if self.lm_restarts < 1:
            raise ValueError("lm_restarts must be at least 1")
        if not 0.0 <= self.verdict_smoothing < 0.5:
            raise ValueError("verdict_smoothing must be in [0, 0.5)")
        if len(self.names) != 2 or self.names[0] == self.names[1]:
            raise ValueError("names must be two different version names")


def gold_verdict(case: Case, knowledge: KnowledgeTable | None = None) -> str:
    """The verdict a perfect model writes for ``case``, from its ground truth.

    Raises:
        ValueError: the case has no ground truth.
    """
    kb = knowledge or default_knowledge()
    f = kb.finding(case.modality, case.finding)
    finding = f.name if f else case.finding
    if case.error_type is None:
        raise ValueError(f"case {case.case_id} has no ground truth (error_type)")
    if case.error_type == "none":
        return f"CORRECT - {case.treatment} fits {finding}"
    if case.error_type == "unsupported_by_image":
        return f"ERROR - the image does not show {finding}"
    return f"ERROR - {case.treatment} is not an accepted treatment for {finding}"


def _absolute(cases: Sequence[Case], image_root: str | None) -> list[Case]:
    if not image_root:
        return list(cases)
    return [
        c if Path(c.image).is_absolute() else replace(c, image=str(Path(image_root) / c.image))
        for c in cases
    ]


def _shown_finding(case: Case, kb: KnowledgeTable) -> Finding | None:
    """The finding the image shows: the demo generator's ``meta["shown_finding"]`` when present,
    else the stated finding of a case whose ground truth says the image shows it."""
    name = case.meta.get("shown_finding") if isinstance(case.meta, dict) else None
    if name:
        return kb.finding(case.modality, str(name))
    if case.error_type in _IMAGE_SHOWS_FINDING:
        return kb.finding(case.modality, case.finding)
    return None


@dataclass
class ClipFit:
    """What fitting the demo CLIP gave.

    Attributes:
        final_loss: the last training batch's loss.
        best_step: the checkpoint kept (lowest val loss; the last step without val cases).
        val_loss: its cross-entropy on the val images (None without val cases).
        val_accuracy: its share of val images whose shown finding it ranks first.
        descriptions: ``(image path, modality) -> scores`` of the training images at the
            checks ``description_checks`` selects (one score list per check, best first): what
            the LM's descriptions are made from, a CLIP as unsure and as often wrong as the kept
            one will be on images it never saw, rather than the kept CLIP's near-perfect view of
            its own training images.
        description_steps: those checks' steps; description_losses: their training-image loss.
        check_losses: ``[step, training-image loss, val loss]`` of every check.
    """

    final_loss: float
    best_step: int
    val_loss: float | None = None
    val_accuracy: float | None = None
    descriptions: dict[tuple[str, str], list[list[tuple[str, float]]]] = field(default_factory=dict)
    description_steps: list[int] = field(default_factory=list)
    description_losses: list[float] = field(default_factory=list)
    check_losses: list[list[float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("descriptions")
        return out


def _image_batch(preprocess: Any, cases: Sequence[Case]) -> Any:
    import torch

    from core.models.backends._policy import load_pil

    return torch.stack([preprocess(load_pil(Path(c.image))) for c in cases])


def _clip_probs(model: Any, images: Any, text_tokens: Any, same_modality: Any) -> Any:
    """Per image, the softmax over its modality's findings (as ``ClipScorer.score``), evaluated."""
    import torch

    model.eval()
    with torch.no_grad():
        txt = model.encode_text(text_tokens, normalize=True)
        out = []
        for i in range(0, len(images), 64):
            img = model.encode_image(images[i : i + 64], normalize=True)
            scale = model.logit_scale.exp().clamp(max=100.0)
            logits = (scale * img @ txt.T).masked_fill(~same_modality[i : i + 64], float("-inf"))
            out.append(logits.softmax(-1))
    model.train()
    return torch.cat(out) if out else torch.zeros((0, len(text_tokens)))


def _nll(probs: Any, target: Any) -> float:
    import torch

    picked = probs[torch.arange(len(target)), target].clamp(min=1e-8)
    return float(-picked.log().mean())


def train_clip(
    folder: Path,
    cases: Sequence[Case],
    cfg: DemoTrainConfig,
    progress: Progress | None,
    stage: str,
    val: Sequence[Case] = (),
) -> ClipFit:
    """Fit the CLIP saved in ``folder`` to name each image's finding; save the checkpoint kept.

    With ``val`` cases (their shown finding known), the val loss is measured every
    ``cfg.eval_every`` steps and at the end, and the checkpoint with the lowest one is kept. At
    each check the training images are scored too; the descriptions of the check whose training
    loss is closest to the kept checkpoint's val loss are returned for the LM (``ClipFit``).
    """
    import copy

    import open_clip
    import torch

    from core.demo.clip import save_clip_weights

    kb = default_knowledge()
    shown = [(c, _shown_finding(c, kb)) for c in cases]
    usable = [(c, f) for c, f in shown if f is not None]
    if not usable:
        raise ValueError(
            "no training case says which finding its image shows; cannot fit the image encoder"
        )
    # The inference transform (not open_clip's random crop): what the scorer will see.
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    findings = [f for m in kb.findings.values() for f in m]
    text_tokens = tokenizer([f.clip_text for f in findings])
    images = _image_batch(preprocess, [c for c, _ in usable])
    target = torch.tensor([findings.index(f) for _, f in usable])
    same_modality = torch.tensor([[f.modality == c.modality for f in findings] for c, _ in usable])
    val_usable = [(c, f) for c, f in ((c, _shown_finding(c, kb)) for c in val) if f is not None]
    val_images = _image_batch(preprocess, [c for c, _ in val_usable]) if val_usable else None
    val_target = torch.tensor([findings.index(f) for _, f in val_usable])
    val_same = torch.tensor([[f.modality == c.modality for f in findings] for c, _ in val_usable])
    # Start at CLIP's largest logit scale (100): a tower trained from scratch begins with nearly
    # identical text embeddings, and at the usual 14 their differences barely move the softmax.
    with torch.no_grad():
        model.logit_scale.fill_(math.log(100.0))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.clip_lr, weight_decay=0.0)
    # Cosine decay to a tenth: at a constant rate the last steps' loss swings (0.26 to 0.73
    # between checks, seed 0), so the kept checkpoint would be a matter of luck.
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / cfg.clip_steps)))
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    loss_value = float("nan")
    best: tuple[float, int, float, dict[str, Any]] | None = None
    checks: list[tuple[int, float, Any]] = []  # (step, loss on the training images, their probs)
    fit_losses: list[list[float]] = []
    for step in range(1, cfg.clip_steps + 1):
        if progress is not None:
            progress.check()
        idx = torch.randint(len(usable), (min(cfg.clip_batch, len(usable)),), generator=gen)
        batch = augment(images[idx], gen, cfg.clip_shift)
        img = model.encode_image(batch, normalize=True)
        txt = model.encode_text(text_tokens, normalize=True)
        logits = model.logit_scale.exp() * img @ txt.T
        logits = logits.masked_fill(~same_modality[idx], float("-inf"))
        loss = torch.nn.functional.cross_entropy(logits, target[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, 4.6052)
        loss_value = float(loss.detach())
        if val_images is not None and (step % cfg.eval_every == 0 or step == cfg.clip_steps):
            train_probs = _clip_probs(model, images, text_tokens, same_modality)
            checks.append((step, _nll(train_probs, target), train_probs))
            vp = _clip_probs(model, val_images, text_tokens, val_same)
            v_loss = _nll(vp, val_target)
            fit_losses.append([step, checks[-1][1], v_loss])
            if best is None or v_loss < best[0]:
                acc = float((vp.argmax(-1) == val_target).float().mean())
                best = (v_loss, step, acc, copy.deepcopy(model.state_dict()))
        if progress is not None and (step % 10 == 0 or step == cfg.clip_steps):
            progress.update(stage, step, cfg.clip_steps, loss=loss_value)
    fit = ClipFit(final_loss=loss_value, best_step=cfg.clip_steps, check_losses=fit_losses)
    if best is not None:
        model.load_state_dict(best[3])
        fit.best_step, fit.val_loss, fit.val_accuracy = best[1], best[0], best[2]
        if cfg.description_checks == "matched":  # as sure of its training images as of new ones
            chosen = [min(checks, key=lambda c: abs(c[1] - best[0]))]
        elif cfg.description_checks == "late":
            chosen = [c for c in checks if c[0] >= cfg.clip_steps / 3] or checks[-1:]
        else:
            chosen = []
        for step, train_loss, probs in chosen:
            fit.description_steps.append(step)
            fit.description_losses.append(train_loss)
            for (c, _), row in zip(usable, probs.tolist(), strict=True):
                scores = sorted(
                    (
                        (f.name, p)
                        for f, p in zip(findings, row, strict=True)
                        if f.modality == c.modality
                    ),
                    key=lambda x: -x[1],
                )
                fit.descriptions.setdefault((str(c.image), c.modality), []).append(scores)
    save_clip_weights(model.eval(), folder)
    return fit


class _Deck:
    """Deals the items of each key's list in a shuffled order, reshuffling when a round is out:
    over ``n`` draws every item of a list of ``k`` comes ``n // k`` or ``n // k + 1`` times
    (``random.choice`` leaves some (finding, treatment) pairs with none or one example)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._left: dict[object, list[Any]] = {}

    def draw(self, key: object, items: Sequence[Any]) -> Any:
        left = self._left.get(key)
        if not left:
            left = list(items)
            self.rng.shuffle(left)
            self._left[key] = left
        return left.pop()


def knowledge_examples(
    cases: Sequence[Case], with_image: bool, seed: int = 0, balanced: bool = True
) -> list[Case]:
    """More training cases made from ``cases`` and the knowledge table (ground truth of the train
    split only): each image whose finding is known, with its finding and an accepted treatment, with
    its finding and a not accepted one (a treatment for another finding of the modality, as the
    demo's mismatches are), and, for a model that sees the image, with a finding of another visual
    that it does not show (an accepted treatment for that one). About the real mix: half
    consistent, a quarter of each error.

    ``balanced`` (the default) deals each finding's treatments (and each modality's other
    findings) from a shuffled deck, so every pair is taught about equally often. With
    independent random draws a not accepted pair could come up once or never: demo-v2 then said
    ``CORRECT - Lobectomy is not an accepted treatment for Lobar consolidation`` on all 11 train
    images of it (seed 0), knowing the rule in its reason but not in its verdict word."""
    kb = default_knowledge()
    rng = random.Random(seed)
    deck = _Deck(rng)

    def pick(key: object, items: Sequence[Any]) -> Any:
        return deck.draw(key, items) if balanced else rng.choice(items)

    out: list[Case] = []
    for c in cases:
        shown = _shown_finding(c, kb)
        if shown is None:
            continue
        findings = kb.findings_for(c.modality)
        pool = sorted({t for f in findings for t in f.acceptable if t not in shown.acceptable})
        variants: list[tuple[Finding, str, str]] = [
            (shown, pick(("ok", c.modality, shown.name), shown.acceptable), "none"),
            (shown, pick(("ok", c.modality, shown.name), shown.acceptable), "none"),
        ]
        if pool:
            variants.append(
                (shown, pick(("not", c.modality, shown.name), pool), "treatment_mismatch")
            )
        others = [f for f in findings if f.visual != shown.visual and f.acceptable]
        if with_image and others:
            other = pick(("other", c.modality, shown.visual), others)
            variants.append(
                (
                    other,
                    pick(("ok", c.modality, other.name), other.acceptable),
                    "unsupported_by_image",
                )
            )
        for k, (stated, treatment, kind) in enumerate(variants):
            out.append(
                Case(
                    f"{c.case_id}~k{k}",
                    c.modality,
                    c.image,
                    stated.name,
                    treatment,
                    kind,
                    split="train",
                )
            )
    return out


def verdict_weighted_loss(
    model: Any,
    inputs: dict[str, Any],
    weight: float,
    smoothing: float = 0.0,
    verdict_ids: tuple[Sequence[int], Sequence[int]] | None = None,
) -> Any:
    """Next-token cross-entropy over the completion, its first token (the verdict word, where the
    decision is made) weighted ``weight`` times; the rest of the verdict is mostly copying.

    With ``smoothing`` and ``verdict_ids`` (``verdict_token_ids(tokenizer)``: the ids that begin
    ERROR and CORRECT), the verdict token's target is ``1 - smoothing`` on the gold word and
    ``smoothing`` on the other word (its spellings summed, as the confidence probe sums them), so
    the model is not pushed to certainty the data cannot support. Plain label smoothing over the
    vocabulary would not do it: the confidence renormalises over the two words, and mass spread
    over ~780 tokens leaves that ratio near 1.
    """
    import torch

    labels = inputs.pop("labels")
    logits = model(**inputs).logits[:, :-1].float()
    target = labels[:, 1:]
    per_token = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        target.reshape(-1),
        ignore_index=-100,
        reduction="none",
    ).view_as(target)
    valid = (target != -100).float()
    first = valid * (valid.cumsum(dim=1) == 1).float()
    if smoothing > 0 and verdict_ids is not None:
        rows, cols = first.nonzero(as_tuple=True)
        err = torch.as_tensor(list(verdict_ids[0]), device=logits.device)
        cor = torch.as_tensor(list(verdict_ids[1]), device=logits.device)
        gold = target[rows, cols]
        is_err, is_cor = torch.isin(gold, err), torch.isin(gold, cor)
        logp = logits[rows, cols].log_softmax(-1)
        other = torch.where(is_err, logp[:, cor].logsumexp(-1), logp[:, err].logsumexp(-1))
        smoothed = (1 - smoothing) * per_token[rows, cols] - smoothing * other
        per_token = per_token.index_put(
            (rows, cols), torch.where(is_err | is_cor, smoothed, per_token[rows, cols])
        )
    w = valid + (weight - 1.0) * first
    return (per_token * w).sum() / w.sum()


def verdict_log_loss(
    backend: Any, cases: Sequence[Case], verdict_ids: tuple[Sequence[int], Sequence[int]]
) -> float:
    """Mean log loss of P(ERROR) renormalised over the two verdict words, read off the logits at
    the end of each prompt (as the confidence probe reads them), against the ground truth."""
    import torch

    err, cor = list(verdict_ids[0]), list(verdict_ids[1])
    model = backend.model
    model.eval()
    total = 0.0
    with torch.inference_mode():
        for i in range(0, len(cases), 32):
            batch = cases[i : i + 32]
            logp = model(**backend.encode(batch)).logits[:, -1].float().log_softmax(-1)
            z = logp[:, err].logsumexp(-1) - logp[:, cor].logsumexp(-1)
            y = torch.tensor([c.is_error for c in batch], dtype=torch.float, device=z.device)
            total += float(
                torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="sum")
            )
    return total / max(1, len(cases))


def train_lm(
    backend: Any,
    cases: Sequence[Case],
    cfg: DemoTrainConfig,
    progress: Progress | None,
    stage: str,
    val: Sequence[Case] = (),
) -> dict[str, Any]:
    """Fit a clip-llm back end's language model (all weights) to the gold verdicts.

    With ``val`` cases (ground truth known), the verdict log loss on them is measured every
    ``cfg.eval_every`` steps and at the end, and the model is left at the best checkpoint.

    Returns:
        ``final_lm_loss`` (the last training batch's), and with ``val``: ``best_step``,
        ``val_verdict_log_loss`` (of the checkpoint kept) and ``check_losses``, every check's
        ``(step, val verdict log loss)``.
    """
    import torch

    from core.models.backends._generation import verdict_token_ids

    rng = random.Random(cfg.seed)
    targets = {c.case_id: gold_verdict(c) for c in cases}
    val = [c for c in val if c.is_error is not None]
    ids = verdict_token_ids(backend.tokenizer)
    model = backend.model
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lm_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 20) * max(0.05, 1 - s / cfg.lm_steps)
    )
    order: list[Case] = []
    loss_value = float("nan")
    best: tuple[float, int, dict[str, Any]] | None = None
    checks: list[tuple[int, float]] = []
    for step in range(1, cfg.lm_steps + 1):
        if progress is not None:
            progress.check()
        if len(order) < cfg.batch_size:
            order += rng.sample(list(cases), len(cases))
        batch, order = order[: cfg.batch_size], order[cfg.batch_size :]
        model.train()
        inputs = backend.encode(batch, [targets[c.case_id] for c in batch])
        loss = verdict_weighted_loss(model, inputs, cfg.verdict_weight, cfg.verdict_smoothing, ids)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        loss_value = float(loss.detach())
        if val and (step % cfg.eval_every == 0 or step == cfg.lm_steps):
            val_loss = verdict_log_loss(backend, val, ids)
            checks.append((step, val_loss))
            if best is None or val_loss < best[0]:
                best = (
                    val_loss,
                    step,
                    {k: v.detach().clone() for k, v in model.state_dict().items()},
                )
        if progress is not None and (step % 10 == 0 or step == cfg.lm_steps):
            progress.update(stage, step, cfg.lm_steps, loss=loss_value)
    out: dict[str, Any] = {"final_lm_loss": loss_value}
    if best is not None:
        model.load_state_dict(best[2])
        out.update(best_step=best[1], val_verdict_log_loss=best[0], check_losses=checks)
    model.eval()
    return out


def _describe_with(
    backend: Any, descriptions: dict[tuple[str, str], list[list[tuple[str, float]]]], seed: int
) -> None:
    """Make ``backend`` describe the images in ``descriptions`` from one of their score lists,
    drawn each time (``ClipFit.descriptions``); any other image (val) through its own CLIP."""
    from core.models.backends._policy import resolve_image

    own = backend.describe
    rng = random.Random(seed)

    def describe(cases: Sequence[Case]) -> list[str | None]:
        keys = [(str(resolve_image(c.image, backend.image_root)), c.modality) for c in cases]
        missing = [c for c, k in zip(cases, keys, strict=True) if k not in descriptions]
        found = iter(own(missing)) if missing else iter(())
        return [
            backend.describe_case(c, rng.choice(descriptions[k]))
            if k in descriptions
            else next(found)
            for c, k in zip(cases, keys, strict=True)
        ]

    backend.describe = describe


def mixed_scores(
    scores: Sequence[tuple[str, float]], toward: str, weight: float
) -> list[tuple[str, float]]:
    """``scores`` mixed with a point mass on the finding ``toward``: ``(1 - weight) * p``, plus
    ``weight`` on ``toward``; still a distribution, best first."""
    mixed = ((n, (1.0 - weight) * p + (weight if n == toward else 0.0)) for n, p in scores)
    return sorted(mixed, key=lambda x: -x[1])


def _mix_calls(backend: Any, examples: Sequence[Case], share: float, seed: int) -> dict[str, int]:
    """Make ``backend`` describe ``share`` of the drawn ``examples`` (training cases, ground truth
    known) from scores mixed toward a random finding of their modality (``mixed_scores``), where
    the encoder's call on the stated finding (``stated_threshold``) still matches what the image
    shows; other draws, and every other case (val), as before. Returns the running counts
    ``{"mixed": .., "kept_as_is": ..}`` (a mix whose call would lie is not used)."""
    from core.models.clip_scorer import stated_probability

    kb = default_knowledge()
    t = backend.config.stated_threshold
    own = backend.describe
    rng = random.Random(seed + 1)  # its own stream: the descriptions' draws stay as they were
    truth = {c.case_id: c.error_type != "unsupported_by_image" for c in examples}
    counts = {"mixed": 0, "kept_as_is": 0}

    def describe(cases: Sequence[Case]) -> list[str | None]:
        out = own(cases)
        picked = [i for i, c in enumerate(cases) if c.case_id in truth and rng.random() < share]
        if not picked:
            return out
        scores = backend.image_scores([cases[i] for i in picked])
        for i, s in zip(picked, scores, strict=True):
            c = cases[i]
            stated = kb.finding(c.modality, c.finding)
            if stated is None:
                continue
            mixed = mixed_scores(s, rng.choice(kb.findings_for(c.modality)).name, rng.random())
            if (stated_probability(mixed, stated.name) >= t) == truth[c.case_id]:
                out[i] = backend.describe_case(c, mixed)
                counts["mixed"] += 1
            else:
                counts["kept_as_is"] += 1
        return out

    backend.describe = describe
    return counts


def stated_threshold_on_val(backend: Any, val: Sequence[Case]) -> tuple[float, float]:
    """The one-threshold rule's threshold for ``backend``'s CLIP, chosen on the ``val`` cases'
    ground truth (a demo-model setting, as its checkpoints are): ``(t, val accuracy)``."""
    from core.models.clip_scorer import choose_stated_threshold, stated_probability

    kb = default_knowledge()
    probs, rejected = [], []
    for c, scores in zip(val, backend.image_scores(val), strict=True):
        f = kb.finding(c.modality, c.finding)
        probs.append(stated_probability(scores, f.name) if f else 0.0)
        rejected.append(kb.is_acceptable(c.modality, c.finding, c.treatment) is False)
    return choose_stated_threshold(probs, rejected, [bool(c.is_error) for c in val])


def _run_summary(fit: dict[str, Any]) -> dict[str, Any]:
    """What the card's ``training.lm_runs`` keeps of one language-model run."""
    keys = ("best_step", "val_verdict_log_loss", "lm_call_mix")
    return {k: fit[k] for k in keys if k in fit}


def lm_run_stage(stage: str, run: int) -> str:
    """The progress stage of a restart (``run`` counts from 0, the first training): the app's
    plans (app/demo_plan.py) name each one they expect."""
    return stage if run == 0 else f"{stage} (run {run + 1})"


def train_demo_models(
    cases: Sequence[Case],
    out_dir: str | Path,
    progress: Progress | None = None,
    config: DemoTrainConfig | None = None,
    image_root: str | None = None,
) -> list[ModelCard]:
    """Build, train and register the two demo versions in the registry at ``out_dir``.

    Args:
        cases: the demo cases (with ground truth); the ``train`` split is fitted, the ``val``
            split (when present) picks each language model's checkpoint; ``test`` is not used.
        out_dir: the registry's models folder (``<workspace>/models``).
        progress: progress and cancel; stages ``demo: image encoder``, one per LM, and one per
            restart of demo-v2's LM (``lm_run_stage``).
        config: steps and rates; ``DemoTrainConfig()`` by default.
        image_root: the folder relative image paths start from.

    Returns:
        The model cards of the two new versions (text-only first).

    Raises:
        ValueError: no training cases with ground truth.
        core.models.registry.RegistryError: a version name is taken.
        core.runtime.progress.Canceled: canceled; nothing is registered.
    """
    import torch

    from core.demo.clip import DemoClipConfig, build_demo_clip
    from core.demo.lm import DemoLMConfig, build_demo_causal_lm
    from core.models.backends.clip_llm import ClipLLMBackend, ClipLLMConfig
    from core.runtime.devices import configure_threads
    from core.runtime.numerics import numerics_in_effect

    configure_threads()
    cfg = config or DemoTrainConfig()
    train = [
        c for c in _absolute(cases, image_root) if c.split == "train" and c.error_type is not None
    ]
    if not train:
        raise ValueError("no train-split cases with ground truth to fit the demo models on")
    val = [c for c in _absolute(cases, image_root) if c.split == "val" and c.error_type is not None]
    registry = Registry(out_dir)
    clip_fit = ClipFit(final_loss=float("nan"), best_step=0)
    clip_fit_extra: dict[str, float] = {}  # the stated call's threshold, chosen on val
    for name in cfg.names[:1] if cfg.text_only else cfg.names:
        if (registry.root / name).exists():
            from core.models.registry import RegistryError

            raise RegistryError(f"model version {name!r} already exists in {registry.root}")
    registry.root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".demo-train-", dir=registry.root))
    torch.manual_seed(cfg.seed)
    lm_cfg = DemoLMConfig()
    training = {
        "cases": len(train),
        "val_cases": len(val),
        **asdict(cfg),
        "numerics": numerics_in_effect(),
    }
    try:
        v1, v2 = tmp / cfg.names[0], tmp / cfg.names[1]
        build_demo_causal_lm(v1 / "base" / "lm", lm_cfg, seed=cfg.seed)
        if not cfg.text_only:
            shutil.copytree(v1 / "base" / "lm", v2 / "base" / "lm")
            build_demo_clip(v2 / "base" / "clip", DemoClipConfig(), seed=cfg.seed)
            clip_fit = train_clip(
                v2 / "base" / "clip", train, cfg, progress, "demo: image encoder", val
            )

        fits: dict[str, dict[str, Any]] = {}
        for folder, with_image in ((v1, False), (v2, True))[: 1 if cfg.text_only else 2]:
            backend = ClipLLMBackend(
                ClipLLMConfig(
                    clip_model=str(folder / "base" / "clip"),
                    lm_model=str(folder / "base" / "lm"),
                    describe_image=with_image,
                    device="cpu",
                )
            )
            if with_image and cfg.stated_call and val:
                t, t_acc = stated_threshold_on_val(backend, val)
                backend.config.stated_threshold = t
                clip_fit_extra = {"stated_threshold": t, "stated_threshold_val_accuracy": t_acc}
            if with_image and clip_fit.descriptions:
                _describe_with(backend, clip_fit.descriptions, cfg.seed)
            examples = list(train)
            if cfg.knowledge_examples:
                examples += knowledge_examples(train, with_image, cfg.seed, cfg.balanced_knowledge)
            mixing = None
            if (
                with_image
                and cfg.call_mix > 0
                and cfg.description_checks == "final"
                and backend.config.stated_threshold is not None
            ):
                mixing = _mix_calls(backend, examples, cfg.call_mix, cfg.seed)
            stage = f"demo: {folder.name} language model"
            fit = train_lm(backend, examples, cfg, progress, stage, val)
            if mixing is not None:
                fit["lm_call_mix"] = dict(mixing)
            runs: list[dict[str, Any]] = []
            if with_image and val and cfg.lm_restarts > 1:
                # A tiny LM from scratch lands in better or worse places by the luck of its
                # initial weights and batch order (val log loss 0.157 against 0.200 on one
                # benchmark seed, docs/models.md). Train it again from others, on the same
                # examples (their descriptions' random draws go on), and keep the run val
                # likes best.
                runs.append({"seed": cfg.seed, **_run_summary(fit)})
                kept = 0
                for r in range(1, cfg.lm_restarts):
                    again = tmp / f"restart-{r}"
                    run_cfg = replace(cfg, seed=cfg.seed + 1000 * r)
                    build_demo_causal_lm(again, lm_cfg, seed=run_cfg.seed)
                    other = ClipLLMBackend(replace(backend.config, lm_model=str(again)))
                    other._scores = backend._scores  # the same CLIP: its scores, not recomputed
                    if "describe" in vars(backend):  # mixed or per-check descriptions
                        other.describe = backend.describe  # type: ignore[method-assign]
                    before = dict(mixing) if mixing is not None else None
                    other_fit = train_lm(other, examples, run_cfg, progress,
                                         lm_run_stage(stage, r), val)  # fmt: skip
                    if mixing is not None and before is not None:
                        other_fit["lm_call_mix"] = {k: v - before[k] for k, v in mixing.items()}
                    runs.append({"seed": run_cfg.seed, **_run_summary(other_fit)})
                    if other_fit["val_verdict_log_loss"] < fit["val_verdict_log_loss"]:
                        backend.model, fit, kept = other.model, other_fit, r
                runs[kept]["kept"] = True
            fits[folder.name] = {"lm_examples": len(examples), **fit}
            if runs:
                fits[folder.name]["lm_runs"] = runs
            backend.model.save_pretrained(folder / "base" / "lm", safe_serialization=True)
        cards = [
            registry.create_version(
                cfg.names[0],
                "clip-llm",
                {"lm": "base/lm"},
                from_folder=v1,
                training={**training, **fits[cfg.names[0]]},
                settings={"describe_image": False},
                description="demo: tiny language model on the case text only (no image)",
            ),
        ]
        if not cfg.text_only:
            cards.append(
                registry.create_version(
                    cfg.names[1],
                    "clip-llm",
                    {"clip": "base/clip", "lm": "base/lm"},
                    from_folder=v2,
                    training={
                        **training,
                        "clip": {**clip_fit.to_dict(), **clip_fit_extra},
                        **fits[cfg.names[1]],
                    },
                    settings={
                        "describe_image": True,
                        "top_k": 2,
                        **{k: v for k, v in clip_fit_extra.items() if k == "stated_threshold"},
                    },
                    description="demo: tiny CLIP image description + tiny language model",
                )
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return cards
