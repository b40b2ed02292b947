"""The shared generation helpers: verdict-word ids, the probe, padding, cutting at EOS."""

from __future__ import annotations

import pytest
import torch

from core.demo.tokenizer import build_demo_tokenizer
from core.models.backends._generation import (
    VerdictProbe,
    cut_completions,
    label_confidence,
    left_pad,
    unpad_rows,
    verdict_token_ids,
)


@pytest.fixture(scope="module")
def tok():
    return build_demo_tokenizer()


def test_verdict_ids_separate_the_words(tok) -> None:
    err, cor = verdict_token_ids(tok)
    assert err and cor and not set(err) & set(cor)
    assert tok.encode("ERROR", add_special_tokens=False)[0] in err
    assert tok.encode("CORRECT", add_special_tokens=False)[0] in cor


def test_verdict_ids_refuse_a_tokenizer_that_cannot_tell_them_apart() -> None:
    class Same:
        def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
            return [7]

    with pytest.raises(ValueError, match="does not separate"):
        verdict_token_ids(Same())


def test_probe_renormalises_over_the_two_words() -> None:
    probe = VerdictProbe([3], [5], steps=2)
    scores = torch.full((2, 8), -10.0)
    scores[0, 3], scores[0, 5] = 2.0, 0.0  # row 0 prefers ERROR
    scores[1, 3], scores[1, 5] = 0.0, 1.0  # row 1 prefers CORRECT
    scores[:, 1] = 5.0  # a non-verdict token is the most likely: renormalising ignores it
    out = probe(None, scores.clone())
    assert torch.equal(out, scores)  # scores untouched
    probe(None, scores.clone())
    probe(None, scores.clone())  # past ``steps``: not recorded
    assert len(probe.records) == 2
    p = probe.error_probability(torch.tensor([[3, 9], [9, 5]]))
    e = torch.exp(torch.tensor(2.0))
    assert p[0] == pytest.approx(float(e / (e + 1)))
    assert p[1] == pytest.approx(float(1 / (1 + torch.exp(torch.tensor(1.0)))))
    assert label_confidence(p[0], "ERROR") == pytest.approx(p[0])
    assert label_confidence(p[1], "CORRECT") == pytest.approx(1 - p[1])
    assert label_confidence(p[0], "UNPARSEABLE") is None


def test_probe_uses_the_position_where_the_word_starts() -> None:
    probe = VerdictProbe([3], [5], steps=3)
    first = torch.zeros(1, 8)
    first[0, 3] = 3.0  # step 0 (a markdown token was written) favours ERROR
    second = torch.zeros(1, 8)
    second[0, 5] = 3.0  # step 1, where CORRECT was written, favours CORRECT
    probe(None, first)
    probe(None, second)
    assert probe.error_probability(torch.tensor([[7, 5]]))[0] < 0.5
    assert probe.error_probability(torch.tensor([[7, 7]]))[0] > 0.5  # no word: first position


def test_left_pad_and_unpad() -> None:
    ids, mask = left_pad([[1, 2, 3], [4]], pad_value=0)
    assert ids.tolist() == [[1, 2, 3], [0, 0, 4]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert unpad_rows(ids, mask) == [[1, 2, 3], [4]]


def test_cut_completions_after_eos() -> None:
    c = torch.tensor([[5, 2, 7, 7], [5, 6, 7, 8]])
    assert cut_completions(c, [2], pad_id=0).tolist() == [[5, 2, 0, 0], [5, 6, 7, 8]]
