"""The vlm back end end to end on a tiny Gemma 3: processor, image tokens, generation, adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.clinical.verdicts import Label
from core.demo.lm import build_demo_gemma3
from core.models.backends import get_backend_class
from core.models.backends._policy import LoraSettings
from core.models.backends.base import TrainablePolicy
from core.models.backends.vlm import VLMBackend, VLMConfig
from tests.core._phantoms import make_cases
from tests.core.models._verdicts import (
    assert_confidences_are_forward_probabilities,
    fit_verdict_lines,
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_gemma3(tmp_path_factory.mktemp("vlm") / "gemma3")


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> list:
    return make_cases(tmp_path_factory.mktemp("img"), n=5)


def _backend(model_dir: Path, **kw: object) -> VLMBackend:
    return VLMBackend(VLMConfig(model=str(model_dir), device="cpu", **kw))


def test_registered_and_trainable(model_dir: Path) -> None:
    assert get_backend_class("vlm") is VLMBackend
    b = _backend(model_dir)
    assert isinstance(b, TrainablePolicy)
    assert type(b.model).__name__ == "Gemma3ForConditionalGeneration"
    assert type(b.processor).__name__ == "Gemma3Processor"


def test_the_model_sees_the_image(model_dir: Path, cases: list) -> None:
    b = _backend(model_dir)
    enc = b.encode(cases[:2])
    n_image = b.processor.image_seq_length
    assert enc["pixel_values"].shape[0] == 2
    image_id = b.tokenizer.image_token_id
    assert ((enc["input_ids"] == image_id).sum(dim=1) == n_image).all()
    assert (enc["token_type_ids"].sum(dim=1) == n_image).all()
    # a different image changes the next-token distribution
    from dataclasses import replace

    other = replace(cases[0], image=cases[1].image)
    with torch.no_grad():
        a = b.model(**b.encode([cases[0]])).logits[:, -1]
        c = b.model(**b.encode([other])).logits[:, -1]
    assert not torch.allclose(a, c)


def test_predict_end_to_end(model_dir: Path, cases: list) -> None:
    b = _backend(model_dir, max_new_tokens=8)
    assert {v.label for v in b.predict(cases[:2])} == {Label.UNPARSEABLE}  # untrained
    fit_verdict_lines(b, cases)
    assert_confidences_are_forward_probabilities(b, cases, b.predict(cases, batch_size=2))


def test_confidence_matches_a_plain_forward(model_dir: Path, cases: list) -> None:
    b = _backend(model_dir)
    err_ids, cor_ids = b._verdict_ids
    with torch.no_grad():
        probs = torch.softmax(b.model(**b.encode(cases[:2])).logits[:, -1].float(), dim=-1)
    pe, pc = probs[:, err_ids].sum(-1), probs[:, cor_ids].sum(-1)
    _, _, p_error = b._generate(cases[:2], max_new_tokens=1)
    torch.testing.assert_close(torch.tensor(p_error), pe / (pe + pc), rtol=1e-4, atol=1e-5)


def test_batched_equals_unbatched(model_dir: Path, cases: list) -> None:
    b = _backend(model_dir, max_new_tokens=6)
    one = [b.generate([c])[1][0] for c in cases[:3]]
    assert b.generate(cases[:3])[1] == one


def test_encode_masks_prompt_and_types_completion_as_text(model_dir: Path, cases: list) -> None:
    b = _backend(model_dir)
    completions = ["CORRECT - Chest tube insertion fits Pneumothorax", "ERROR - no"]
    enc = b.encode(cases[:2], completions)
    for i, text in enumerate(completions):
        want = b.tokenizer.encode(text, add_special_tokens=False) + [b.tokenizer.eos_token_id]
        assert enc["labels"][i][enc["labels"][i] != -100].tolist() == want
        assert enc["token_type_ids"][i, -len(want) :].sum() == 0
    loss = b.model(**enc).loss
    assert torch.isfinite(loss)


def test_adapter_round_trip(model_dir: Path, cases: list, tmp_path: Path) -> None:
    b = _backend(model_dir, max_new_tokens=6)
    b.add_adapter(LoraSettings(r=4, alpha=8, dropout=0.0))
    names = [n for n, _ in b.model.named_parameters() if "lora_" in n]
    assert names and all("language_model" in n for n in names)
    torch.manual_seed(2)
    with torch.no_grad():
        for n, p in b.model.named_parameters():
            if "lora_" in n:
                p.add_(torch.randn_like(p) * 0.5)
    b.model.eval()
    with torch.no_grad():
        logits = b.model(**b.encode(cases[:2])).logits
    texts = b.generate(cases[:2])[1]
    b.save_adapter(str(tmp_path / "adapter"))
    fresh = _backend(model_dir, max_new_tokens=6, adapter=str(tmp_path / "adapter"))
    with torch.no_grad():
        torch.testing.assert_close(fresh.model(**fresh.encode(cases[:2])).logits, logits)
    assert fresh.generate(cases[:2])[1] == texts


def test_verdict_branches_score_both_answers_with_the_image(model_dir: Path, cases: list) -> None:
    """The two-branch decoding runs on the image model too (the forced word typed as text), and
    keeps the answer whose teacher-forced log P, image included, is the higher of the two."""
    b = _backend(model_dir, max_new_tokens=8, decoding="verdict_branches")
    fit_verdict_lines(b, cases)
    texts, p_error = b._branch_answers(cases)
    assert all(t.split(" ", 1)[0] in ("ERROR", "CORRECT") for t in texts), texts
    inputs = b.encode(cases)
    branch: dict[str, list[float]] = {}
    for word in ("ERROR", "CORRECT"):  # each branch, generated here with the image inputs
        head = torch.tensor([b.tokenizer.encode(word, add_special_tokens=False)] * len(cases))
        batch = dict(inputs)
        batch["input_ids"] = torch.cat([inputs["input_ids"], head], dim=1)
        batch["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(head)], 1)
        if "token_type_ids" in batch:
            batch["token_type_ids"] = torch.cat([inputs["token_type_ids"], 0 * head], dim=1)
        with torch.no_grad():
            out = b.model.generate(**batch, max_new_tokens=8 - head.shape[1], do_sample=False,
                                   pad_token_id=b.tokenizer.pad_token_id, eos_token_id=b._eos_ids)  # fmt: skip
        new = out[:, inputs["input_ids"].shape[1] :]
        words = [
            b.tokenizer.decode([t for t in r.tolist() if t not in b._eos_ids
                                and t != b.tokenizer.pad_token_id], skip_special_tokens=True).strip()
            for r in new
        ]  # fmt: skip
        branch[word] = b.answer_logprobs(cases, words)
    chosen = b.answer_logprobs(cases, texts)
    for i, (t, pe) in enumerate(zip(texts, p_error, strict=True)):
        best = max(branch["ERROR"][i], branch["CORRECT"][i])
        assert chosen[i] == pytest.approx(best, abs=1e-3), (t, branch, chosen)
        assert pe is not None and (pe >= 0.5) == t.startswith("ERROR"), (t, pe)
    assert [v.text for v in b.predict(cases, batch_size=4)] == texts
