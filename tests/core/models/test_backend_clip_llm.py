"""The clip-llm back end end to end on tiny models: real preprocessing, generation, parsing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.clinical.verdicts import Label
from core.demo.clip import build_demo_clip
from core.demo.lm import build_demo_causal_lm
from core.models.backends import get_backend_class
from core.models.backends.base import TrainablePolicy
from core.models.backends.clip_llm import ClipLLMBackend, ClipLLMConfig
from tests.core._phantoms import make_cases
from tests.core.models._verdicts import (
    assert_confidences_are_forward_probabilities,
    fit_verdict_lines,
)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clipllm")
    build_demo_clip(root / "clip")
    build_demo_causal_lm(root / "lm")
    return root


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> list:
    return make_cases(tmp_path_factory.mktemp("img"), n=6)


def _backend(demo_dir: Path, **kw: object) -> ClipLLMBackend:
    cfg = ClipLLMConfig(
        clip_model=str(demo_dir / "clip"), lm_model=str(demo_dir / "lm"), device="cpu", **kw
    )
    return ClipLLMBackend(cfg)


def test_registered_and_trainable(demo_dir: Path) -> None:
    assert get_backend_class("clip-llm") is ClipLLMBackend
    b = _backend(demo_dir, max_new_tokens=4)
    assert isinstance(b, TrainablePolicy)
    assert (b.device, b.dtype) == ("cpu", "float32")


def test_prompt_carries_the_image_description(demo_dir: Path, cases: list) -> None:
    b = _backend(demo_dir)
    desc = b.describe(cases[:2])
    assert all(d is not None and d.startswith("image suggests: ") for d in desc)
    names = {f.name for f in b.scorer.knowledge.findings_for(cases[0].modality)}
    assert desc[0].split(": ", 1)[1].rsplit(" (", 1)[0].split(" (")[0] in names
    prompt = b.prompt_texts(cases[:1])[0]
    assert "Image: image suggests: " in prompt and prompt.endswith("<start_of_turn>model\n")
    assert _backend(demo_dir, describe_image=False).prompt_texts(cases[:1])[0].find("Image:") == -1


def test_confidence_is_the_models_verdict_word_probability(demo_dir: Path, cases: list) -> None:
    """The probe's P(ERROR) equals the softmax of a plain forward pass at the first position."""
    b = _backend(demo_dir)
    err_ids, cor_ids = b._verdict_ids
    inputs = b.encode(cases[:3])
    with torch.no_grad():
        probs = torch.softmax(b.model(**inputs).logits[:, -1].float(), dim=-1)
    pe, pc = probs[:, err_ids].sum(-1), probs[:, cor_ids].sum(-1)
    _, _, p_error = b._generate(cases[:3], max_new_tokens=1)
    torch.testing.assert_close(torch.tensor(p_error), (pe / (pe + pc)), rtol=1e-4, atol=1e-5)


def test_predict_end_to_end(demo_dir: Path, cases: list) -> None:
    b = _backend(demo_dir, max_new_tokens=8)
    assert {v.label for v in b.predict(cases, batch_size=4)} == {Label.UNPARSEABLE}  # untrained
    assert all(v.confidence is None for v in b.predict(cases[:2]))
    fit_verdict_lines(b, cases)
    assert_confidences_are_forward_probabilities(b, cases, b.predict(cases, batch_size=4))


def test_batched_equals_unbatched(demo_dir: Path, cases: list) -> None:
    b = _backend(demo_dir, max_new_tokens=8)
    one = [b.generate([c])[1][0] for c in cases[:3]]
    _, many = b.generate(cases[:3])
    assert one == many


def test_encode_masks_prompt(demo_dir: Path, cases: list) -> None:
    b = _backend(demo_dir)
    completions = ["ERROR - the image does not show Pneumothorax", "CORRECT - fits"]
    enc = b.encode(cases[:2], completions)
    prompt = b.encode(cases[:2])
    for i, text in enumerate(completions):
        want = b.tokenizer.encode(text, add_special_tokens=False) + [b.tokenizer.eos_token_id]
        labels = enc["labels"][i]
        kept = labels[labels != -100].tolist()
        assert kept == want
        assert enc["input_ids"][i, -len(want) :].tolist() == want
        n_prompt = int(prompt["attention_mask"][i].sum())
        assert int(enc["attention_mask"][i].sum()) == n_prompt + len(want)
    assert enc["input_ids"].shape == enc["labels"].shape
    with pytest.raises(ValueError):
        b.encode(cases[:2], ["only one"])


def test_adapter_round_trip(demo_dir: Path, cases: list, tmp_path: Path) -> None:
    from core.models.backends._policy import LoraSettings

    b = _backend(demo_dir, max_new_tokens=8)
    base_logits = b.model(**b.encode(cases[:2])).logits
    b.add_adapter(LoraSettings(r=4, alpha=8, dropout=0.0))
    torch.manual_seed(1)
    with torch.no_grad():
        for n, p in b.model.named_parameters():
            if "lora_" in n:
                p.add_(torch.randn_like(p) * 0.5)
    b.model.eval()
    inputs = b.encode(cases[:2])
    with torch.no_grad():
        logits = b.model(**inputs).logits
    assert not torch.allclose(logits, base_logits.detach())
    texts = b.generate(cases[:2])[1]
    b.save_adapter(str(tmp_path / "adapter"))
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()

    fresh = _backend(demo_dir, max_new_tokens=8, adapter=str(tmp_path / "adapter"))
    with torch.no_grad():
        again = fresh.model(**fresh.encode(cases[:2])).logits
    torch.testing.assert_close(again, logits)
    assert fresh.generate(cases[:2])[1] == texts


def test_adapter_errors(demo_dir: Path, tmp_path: Path) -> None:
    b = _backend(demo_dir, max_new_tokens=2)
    with pytest.raises(ValueError, match="no LoRA adapter"):
        b.save_adapter(str(tmp_path / "a"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "adapter_config.json").write_text("{}")
    (tmp_path / "bad" / "adapter_model.bin").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="safetensors"):
        b.load_adapter(str(tmp_path / "bad"))


def test_missing_image_is_a_clear_error(demo_dir: Path, cases: list) -> None:
    from dataclasses import replace

    b = _backend(demo_dir, max_new_tokens=2)
    with pytest.raises(FileNotFoundError, match="image not found"):
        b.predict([replace(cases[0], image="/nonexistent/x.png")])


def test_probe_hook_is_removed_after_generation(demo_dir: Path, cases: list) -> None:
    b = _backend(demo_dir, max_new_tokens=8)
    head = b.model.get_output_embeddings()
    b.generate(cases[:2])
    assert len(head._forward_hooks) == 0


def test_importing_the_back_end_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, core.models.backends.clip_llm, core.models.backends.vlm, core.models.registry; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_stated_call_follows_the_threshold(demo_dir: Path, cases: list) -> None:
    """With a stated_threshold the description ends with the encoder's call on the case's own
    stated finding, read from the same scores as the rest of the line."""
    from core.models.clip_scorer import stated_probability

    plain = _backend(demo_dir)
    case = cases[0]
    scores = plain.image_scores([case])[0]
    stated = plain.knowledge.finding(case.modality, case.finding)
    assert stated is not None
    p = stated_probability(scores, stated.name)
    assert "stated finding" not in plain.describe([case])[0]
    low = _backend(demo_dir, stated_threshold=max(0.01, p / 2)).describe([case])[0]
    assert low.endswith(f"; stated finding: seen ({p:.2f})")
    if p < 0.98:
        high = _backend(demo_dir, stated_threshold=min(0.99, p + 0.01)).describe([case])[0]
        assert high.endswith(f"; stated finding: not seen ({p:.2f})")
    with pytest.raises(ValueError, match="stated_threshold"):
        ClipLLMConfig(stated_threshold=1.0)


def test_answer_logprobs_are_the_generated_tokens_probabilities(
    demo_dir: Path, cases: list
) -> None:
    """Teacher-forced log P(answer) equals the sum of generate's own scores of the greedy answer."""
    b = _backend(demo_dir, max_new_tokens=8)
    fit_verdict_lines(b, cases, steps=60)  # long enough to learn where an answer ends
    inputs = b.encode(cases[:3])
    with torch.no_grad():
        out = b.model.generate(**inputs, max_new_tokens=40, do_sample=False,
                               output_scores=True, return_dict_in_generate=True,
                               pad_token_id=b.tokenizer.pad_token_id, eos_token_id=b._eos_ids)  # fmt: skip
    steps = b.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
    new = out.sequences[:, inputs["input_ids"].shape[1] :]
    want = []
    for row, score in zip(new, steps, strict=True):
        ends = [i for i, t in enumerate(row.tolist()) if t in b._eos_ids]
        assert ends, "the fitted model ends its answer"
        want.append(float(score[: ends[0] + 1].sum()))
    texts = [t.strip() for t in b.tokenizer.batch_decode(new, skip_special_tokens=True)]
    assert b.answer_logprobs(cases[:3], texts) == pytest.approx(want, abs=1e-3)


def test_verdict_branches_keep_the_more_probable_whole_answer(demo_dir: Path, cases: list) -> None:
    """decoding="verdict_branches": of the best ERROR answer and the best CORRECT answer (the word
    forced, the rest greedy) the verdict is the one with the higher log P(answer), and its
    confidence is that answer's probability renormalised over the two."""
    b = _backend(demo_dir, max_new_tokens=8, decoding="verdict_branches")
    fit_verdict_lines(b, cases)
    verdicts = b.predict(cases, batch_size=4)
    inputs = b.encode(cases)
    best: dict[str, list[str]] = {}
    for word in ("ERROR", "CORRECT"):  # the branches, written here without the back end's code
        head = torch.tensor([b.tokenizer.encode(word, add_special_tokens=False)] * len(cases))
        ids = torch.cat([inputs["input_ids"], head], dim=1)
        mask = torch.cat([inputs["attention_mask"], torch.ones_like(head)], dim=1)
        with torch.no_grad():
            out = b.model.generate(input_ids=ids, attention_mask=mask,
                                   max_new_tokens=b.max_new_tokens - head.shape[1],
                                   do_sample=False, pad_token_id=b.tokenizer.pad_token_id,
                                   eos_token_id=b._eos_ids)  # fmt: skip
        new = out[:, inputs["input_ids"].shape[1] :]
        best[word] = [
            b.tokenizer.decode([t for t in r.tolist() if t not in b._eos_ids and
                                t != b.tokenizer.pad_token_id], skip_special_tokens=True).strip()
            for r in new
        ]  # fmt: skip
    lp = {w: b.answer_logprobs(cases, texts) for w, texts in best.items()}
    for i, v in enumerate(verdicts):
        le, lc = lp["ERROR"][i], lp["CORRECT"][i]
        want = "ERROR" if le >= lc else "CORRECT"
        assert v.text == best[want][i] and v.label is Label(want), (v.text, le, lc)
        p_error = 1.0 / (1.0 + float(torch.exp(torch.tensor(lc - le))))
        assert v.confidence == pytest.approx(p_error if want == "ERROR" else 1 - p_error, abs=1e-4)
    # Independently of the above: the branch of the word greedy itself writes first is greedy's
    # own answer, and the confidences are not greedy's first-token probe.
    b.decoding = "greedy"
    greedy = b.predict(cases, batch_size=4)
    for i, g in enumerate(greedy):
        if g.label is not Label.UNPARSEABLE:
            assert best[g.label.value][i] == g.text
    assert any(
        g.confidence is not None and abs(g.confidence - v.confidence) > 1e-3
        for g, v in zip(greedy, verdicts, strict=True)
        if g.label is v.label
    )
    with pytest.raises(ValueError, match="decoding"):
        ClipLLMConfig(decoding="beam")
