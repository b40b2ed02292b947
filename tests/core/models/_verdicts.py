"""What the back ends' end-to-end predict tests share: a few fitting steps so a tiny untrained
model writes ``WORD - ...`` lines, and the check that each verdict's confidence is its word's
probability as a plain forward pass gives it."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from core.clinical.verdicts import Label


def fit_verdict_lines(b: Any, cases: list, steps: int = 15) -> None:
    """A few full-model steps (1-3 s) so the untrained model writes ``WORD - ...`` lines: the
    fresh one answers only unparseable text, which would leave a verdict's confidence untested."""
    texts = [f"{c.truth_label} - {c.finding}" for c in cases]
    torch.manual_seed(0)
    opt = torch.optim.AdamW(b.model.parameters(), lr=3e-3)
    b.model.train()
    for _ in range(steps):
        b.model(**b.encode(cases, texts)).loss.backward()
        opt.step()
        opt.zero_grad()
    b.model.eval()


def assert_confidences_are_forward_probabilities(b: Any, cases: list, verdicts: list) -> None:
    """At least one verdict parsed; a parsed verdict's confidence is its own word's probability
    among the two at the first answer position; an unparseable one has none; each has a latency."""
    assert len(verdicts) == len(cases)
    parsed = [(i, v) for i, v in enumerate(verdicts) if v.label is not Label.UNPARSEABLE]
    assert parsed, [v.text for v in verdicts]
    err_ids, cor_ids = b._verdict_ids
    with torch.no_grad():
        probs = torch.softmax(b.model(**b.encode(cases)).logits[:, -1].float(), dim=-1)
    pe = probs[:, err_ids].sum(-1) / (probs[:, err_ids].sum(-1) + probs[:, cor_ids].sum(-1))
    for i, v in parsed:
        want = float(pe[i]) if v.label is Label.ERROR else 1.0 - float(pe[i])
        assert v.confidence == pytest.approx(want, abs=1e-4), (v.text, v.confidence, want)
    for v in verdicts:
        assert v.latency_ms is not None and v.latency_ms > 0
        if v.label is Label.UNPARSEABLE:
            assert v.confidence is None
