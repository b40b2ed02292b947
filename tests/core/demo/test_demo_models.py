"""The embedded demo models: built locally with the real classes, trained briefly, registered."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from core.clinical.verdicts import Label, parse_verdict
from core.demo.clip import CONFIG_FILE, WEIGHTS_FILE, build_demo_clip
from core.demo.lm import DemoLMConfig, build_demo_causal_lm, build_demo_gemma3
from core.demo.tokenizer import build_demo_tokenizer
from core.demo.train_models import DemoTrainConfig, gold_verdict, train_demo_models, train_lm
from core.models.registry import Registry, RegistryError
from core.runtime.progress import Canceled, Progress
from tests.core._phantoms import make_cases


def test_tokenizer_keeps_case_and_has_the_tokens_gemma_needs() -> None:
    tok = build_demo_tokenizer()
    text = "ERROR - Lobectomy is not an accepted treatment for Pneumothorax"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    assert (
        tok.decode(tok.encode("naïve ünïcode 12.5%", add_special_tokens=False))
        == "naïve ünïcode 12.5%"
    )
    for attr in (
        "boi_token_id",
        "eoi_token_id",
        "image_token_id",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
    ):
        assert isinstance(getattr(tok, attr), int)
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert chat == "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n"
    assert build_demo_tokenizer().get_vocab() == tok.get_vocab()  # deterministic


def test_builders_write_safetensors_of_the_real_classes(tmp_path: Path) -> None:
    import open_clip
    from transformers import AutoConfig

    clip = build_demo_clip(tmp_path / "clip")
    assert {p.name for p in clip.iterdir()} == {CONFIG_FILE, WEIGHTS_FILE}
    model = open_clip.create_model(f"local-dir:{clip}")
    assert type(model).__name__ == "CLIP"
    lm = build_demo_causal_lm(tmp_path / "lm")
    vlm = build_demo_gemma3(tmp_path / "vlm")
    assert AutoConfig.from_pretrained(lm).architectures == ["LlamaForCausalLM"]
    cfg = AutoConfig.from_pretrained(vlm)
    assert cfg.architectures == ["Gemma3ForConditionalGeneration"]
    assert json.loads((vlm / "processor_config.json").read_text())["image_seq_length"] == 16
    for folder in (clip, lm, vlm):
        assert not [p for p in folder.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".pkl")]
    with pytest.raises(ValueError):
        DemoLMConfig(image_tokens=15)


def test_gold_verdicts_parse_to_the_truth(tmp_path: Path) -> None:
    cases = make_cases(tmp_path, n=12)
    for c in cases:
        text = gold_verdict(c)
        label, reason = parse_verdict(text)
        assert label is Label(c.truth_label) and c.finding in reason
    from dataclasses import replace

    with pytest.raises(ValueError, match="no ground truth"):
        gold_verdict(replace(cases[0], error_type=None))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, list]:
    root = tmp_path_factory.mktemp("demo")
    cases = make_cases(root / "img", n=48, seed=1, split="train")
    events: list = []
    cfg = DemoTrainConfig(clip_steps=20, lm_steps=20, batch_size=8)
    cards = train_demo_models(cases, root / "models", Progress(events.append), cfg)
    return root, cards, events


def test_training_registers_two_versions(trained: tuple) -> None:
    root, cards, events = trained
    reg = Registry(root / "models")
    assert [c.name for c in cards] == ["demo-v1", "demo-v2"]
    assert [c.name for c in reg.list()] == ["demo-v1", "demo-v2"]
    assert cards[0].settings["describe_image"] is False and "clip" not in cards[0].base_models
    assert cards[1].base_models == {"clip": "base/clip", "lm": "base/lm"}
    assert all(f.endswith((".json", ".safetensors", ".jinja")) for f in cards[1].files)
    assert not [p for p in (root / "models").iterdir() if p.name.startswith(".demo-train")]
    stages = {e.stage for e in events}
    assert stages == {
        "demo: image encoder",
        "demo: demo-v1 language model",
        "demo: demo-v2 language model",
    }
    assert all(e.loss is not None for e in events)


def test_training_changed_the_weights(trained: tuple, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    root, _, _ = trained
    fresh_clip = load_file(build_demo_clip(tmp_path / "c", seed=0) / WEIGHTS_FILE)
    fresh_lm = load_file(build_demo_causal_lm(tmp_path / "l", seed=0) / "model.safetensors")
    clip = load_file(root / "models" / "demo-v2" / "base" / "clip" / WEIGHTS_FILE)
    lm = load_file(root / "models" / "demo-v2" / "base" / "lm" / "model.safetensors")
    visual = [k for k in clip if k.startswith("visual.")]
    assert visual and any(not torch.equal(clip[k], fresh_clip[k]) for k in visual)
    key = next(k for k in lm if k.endswith("q_proj.weight"))
    assert not torch.equal(lm[key], fresh_lm[key])


def test_trained_versions_load_and_predict(trained: tuple, tmp_path: Path) -> None:
    root, _, _ = trained
    cases = make_cases(tmp_path, n=4, seed=9)
    reg = Registry(root / "models")
    for name in ("demo-v1", "demo-v2"):
        backend = reg.load_backend(name, device="cpu")
        verdicts = backend.predict(cases)
        assert len(verdicts) == 4
        # Trained, even briefly, both answer with a verdict word and its probability.
        assert all(v.label is not Label.UNPARSEABLE for v in verdicts), [v.text for v in verdicts]
        assert all(v.confidence is not None and 0.0 < v.confidence <= 1.0 for v in verdicts)


def test_taken_names_and_cancel(trained: tuple, tmp_path: Path) -> None:
    root, _, _ = trained
    cases = make_cases(tmp_path / "img", n=12, split="train")
    with pytest.raises(RegistryError, match="already exists"):
        train_demo_models(cases, root / "models", config=DemoTrainConfig(clip_steps=1, lm_steps=1))
    p = Progress()
    p.cancel()
    with pytest.raises(Canceled):
        train_demo_models(cases, tmp_path / "models", p, DemoTrainConfig(clip_steps=2, lm_steps=2))
    assert not (tmp_path / "models" / "demo-v1").exists()
    assert not [x for x in (tmp_path / "models").iterdir()]
    with pytest.raises(ValueError, match="no train-split cases"):
        train_demo_models(make_cases(tmp_path / "t", n=3, split="test"), tmp_path / "m2")


def test_verdict_confidence_does_not_saturate(tmp_path: Path) -> None:
    """Calibration guard: a demo LM drilled on a handful of cases until it knows them by heart
    must still not claim certainty. With the old loss (verdict word weighted 5x, no smoothing)
    16 of these 24 confidences were > 0.99 (max 0.997); the two-way smoothing of the verdict
    word keeps them under ~0.92, spread out."""
    from core.models.backends.clip_llm import ClipLLMBackend, ClipLLMConfig

    cases = make_cases(tmp_path / "img", n=24, seed=3, split="train")
    lm = build_demo_causal_lm(tmp_path / "lm", seed=0)
    backend = ClipLLMBackend(ClipLLMConfig(lm_model=str(lm), describe_image=False, device="cpu"))
    torch.manual_seed(0)
    fit = train_lm(backend, cases, DemoTrainConfig(lm_steps=300, batch_size=8), None, "t")
    assert set(fit) == {"final_lm_loss"}  # no val cases: the last step is kept
    confidences = [
        v.confidence for v in backend.predict(cases, batch_size=24) if v.confidence is not None
    ]
    assert len(confidences) >= 20
    assert max(confidences) < 0.95 and not [c for c in confidences if c > 0.99], confidences
    assert max(confidences) - min(confidences) > 0.2, confidences


def test_val_split_picks_the_checkpoint(tmp_path: Path) -> None:
    from core.models.backends.clip_llm import ClipLLMBackend, ClipLLMConfig

    cases = make_cases(tmp_path / "img", n=12, seed=3, split="train")
    val = make_cases(tmp_path / "val", n=6, seed=4, split="val")
    lm = build_demo_causal_lm(tmp_path / "lm", seed=0)
    backend = ClipLLMBackend(ClipLLMConfig(lm_model=str(lm), describe_image=False, device="cpu"))
    fit = train_lm(
        backend, cases, DemoTrainConfig(lm_steps=30, batch_size=4, eval_every=10), None, "t", val
    )
    # Checked every 10 steps; the step kept is the one with the lowest val loss, and the model
    # is left at that checkpoint (its val loss, measured again, is the one reported).
    steps = [s for s, _ in fit["check_losses"]]
    assert steps == [10, 20, 30]
    best_step, best_loss = min(fit["check_losses"], key=lambda c: c[1])
    assert fit["best_step"] == best_step and fit["val_verdict_log_loss"] == pytest.approx(best_loss)
    from core.demo.train_models import verdict_log_loss
    from core.models.backends._generation import verdict_token_ids

    val_cases = [c for c in val if c.is_error is not None]
    again = verdict_log_loss(backend, val_cases, verdict_token_ids(backend.tokenizer))
    assert again == pytest.approx(best_loss, rel=1e-4) and best_loss > 0
    with pytest.raises(ValueError, match="verdict_smoothing"):
        DemoTrainConfig(verdict_smoothing=0.5)
    with pytest.raises(ValueError, match="eval_every"):
        DemoTrainConfig(eval_every=0)


@pytest.mark.slow
def test_demo_v2_beats_the_heuristic_on_image_only_errors(tmp_path: Path) -> None:
    """The demo benchmark's point, on held-out cases: the heuristic catches no image-only error
    by construction; the demo model with the image description catches most of them without
    flagging the consistent cases."""
    from core.demo import generate_demo
    from core.evaluation import evaluate
    from core.models.backends.heuristic import HeuristicBackend

    cases = generate_demo(tmp_path, seed=0, n_cases=600)  # the demo workspace's default
    train_demo_models(
        cases, tmp_path / "models", config=DemoTrainConfig(), image_root=str(tmp_path)
    )
    test = [c for c in cases if c.split == "test"]
    v2 = Registry(tmp_path / "models").load_backend(
        "demo-v2", device="cpu", image_root=str(tmp_path)
    )
    ours = v2.predict(test, batch_size=16)
    base = HeuristicBackend().predict(test)

    def rate(verdicts: list, kind: str) -> float:
        pairs = [(c, v) for c, v in zip(test, verdicts, strict=True) if c.error_type == kind]
        return sum(v.label.value == c.truth_label for c, v in pairs) / len(pairs)

    assert rate(base, "unsupported_by_image") == 0.0
    assert rate(ours, "unsupported_by_image") >= 0.6
    assert rate(ours, "none") >= 0.7
    assert evaluate(test, ours).overall.accuracy > evaluate(test, base).overall.accuracy


def test_knowledge_examples_teach_the_table_on_train_images_only(tmp_path: Path) -> None:
    from core.clinical.knowledge import default_knowledge
    from core.demo.train_models import knowledge_examples

    kb = default_knowledge()
    cases = make_cases(tmp_path / "img", n=24, seed=5, split="train")
    with_image = knowledge_examples(cases, with_image=True, seed=0)
    text_only = knowledge_examples(cases, with_image=False, seed=0)
    assert {c.image for c in with_image} <= {c.image for c in cases}  # no new image
    assert not [c for c in text_only if c.error_type == "unsupported_by_image"]
    kinds = {c.error_type for c in with_image}
    assert kinds == {"none", "treatment_mismatch", "unsupported_by_image"}
    for c in with_image:
        ok = kb.is_acceptable(c.modality, c.finding, c.treatment)
        assert ok == (c.error_type != "treatment_mismatch")
        assert parse_verdict(gold_verdict(c))[0] is Label(c.truth_label)
    share = sum(c.error_type == "none" for c in with_image) / len(with_image)
    assert 0.4 <= share <= 0.6  # about the real mix


def test_balanced_knowledge_teaches_every_pair_about_equally(tmp_path: Path) -> None:
    """Dealt from decks, each finding's not accepted treatments come n // k or n // k + 1 times;
    independent draws (balanced=False, the old way) leave some pairs far from that."""
    from collections import Counter

    from core.clinical.knowledge import default_knowledge
    from core.demo.train_models import _Deck, _shown_finding, knowledge_examples

    kb = default_knowledge()
    cases = make_cases(tmp_path / "img", n=60, seed=8, split="train")

    def spread(examples: list) -> dict[tuple[str, str], tuple[int, int]]:
        by: dict[tuple[str, str], Counter] = {}
        for c in examples:
            if c.error_type == "treatment_mismatch":
                by.setdefault((c.modality, c.finding), Counter())[c.treatment] += 1
        out = {}
        for (modality, name), counts in by.items():
            findings = kb.findings_for(modality)
            f = next(f for f in findings if f.name == name)
            pool = {t for g in findings for t in g.acceptable} - set(f.acceptable)
            out[(modality, name)] = (min(counts.get(t, 0) for t in pool), max(counts.values()))
        return out

    balanced = spread(knowledge_examples(cases, with_image=True, seed=0))
    assert balanced and all(hi - lo <= 1 for lo, hi in balanced.values()), balanced
    shown = Counter(f.name for c in cases if (f := _shown_finding(c, kb)) is not None)
    assert max(shown.values()) >= 8  # enough draws per finding for the spread to mean something
    unbalanced = [spread(knowledge_examples(cases, with_image=True, seed=s, balanced=False))
                  for s in range(5)]  # fmt: skip
    assert any(hi - lo > 1 for sp in unbalanced for lo, hi in sp.values())
    deck = _Deck(random.Random(0))
    dealt = [deck.draw("k", "abc") for _ in range(7)]
    assert sorted(dealt[:3]) == sorted(dealt[3:6]) == ["a", "b", "c"]


def test_clip_checkpoint_is_chosen_on_val(tmp_path: Path) -> None:
    from core.demo.train_models import train_clip

    train = make_cases(tmp_path / "img", n=24, seed=6, split="train")
    val = make_cases(tmp_path / "val", n=8, seed=7, split="val")
    folder = build_demo_clip(tmp_path / "clip", seed=0)
    fit = train_clip(
        folder, train, DemoTrainConfig(clip_steps=20, eval_every=5, batch_size=4), None, "c", val
    )
    assert [c[0] for c in fit.check_losses] == [5, 10, 15, 20]
    best = min(fit.check_losses, key=lambda c: c[2])
    assert fit.best_step == best[0] and fit.val_loss == pytest.approx(best[2])
    assert 0.0 <= fit.val_accuracy <= 1.0 and fit.descriptions == {}  # "final": the CLIP's own
    matched = train_clip(build_demo_clip(tmp_path / "clip2", seed=0), train,
                         DemoTrainConfig(clip_steps=10, eval_every=5, batch_size=4, description_checks="matched"),
                         None, "c", val)  # fmt: skip
    known = [c for c in train if c.error_type != "unsupported_by_image"]  # shown finding known
    assert len(matched.description_steps) == 1 and len(matched.descriptions) == len(known)
    # Score lists (best first), which the LM's descriptions are made from per case.
    assert all(
        d[0] and d[0] == sorted(d[0], key=lambda x: -x[1]) for d in matched.descriptions.values()
    )


def test_demo_v2_states_the_encoders_call_at_the_threshold_chosen_on_val(tmp_path: Path) -> None:
    """demo-v2's description gives the encoder's call on the stated finding at the one-threshold
    rule's threshold, chosen on the val split with the CLIP kept (never on test)."""
    from dataclasses import replace

    from core.demo.train_models import stated_threshold_on_val

    train = make_cases(tmp_path / "img", n=24, seed=6, split="train")
    val = make_cases(tmp_path / "val", n=12, seed=7, split="val")
    test = make_cases(tmp_path / "test", n=6, seed=8, split="test")
    test = [replace(c, error_type="none" if c.is_error else "treatment_mismatch") for c in test]
    cfg = DemoTrainConfig(clip_steps=10, lm_steps=10, batch_size=4, eval_every=5)
    cards = train_demo_models(train + val + test, tmp_path / "models", None, cfg)
    t = cards[1].settings["stated_threshold"]
    assert 0.0 < t < 1.0 and "stated_threshold" not in cards[0].settings
    assert cards[1].training["clip"]["stated_threshold"] == t
    backend = Registry(tmp_path / "models").load_backend("demo-v2", device="cpu")
    assert backend.config.stated_threshold == t
    assert stated_threshold_on_val(backend, val)[0] == t  # the same rule, on val, gives it
    assert all("; stated finding: " in d for d in backend.describe(val))
    off = train_demo_models(train + val, tmp_path / "off", None, replace(cfg, stated_call=False))
    assert "stated_threshold" not in off[1].settings
    # The LM learnt from descriptions mixed toward other findings (call_mix), only where a call
    # is made; the card counts them.
    assert cards[1].training["lm_call_mix"]["mixed"] > 0
    assert "lm_call_mix" not in off[1].training and "lm_call_mix" not in cards[0].training
    # demo-v2's LM was trained twice (lm_restarts 2) and the one val likes best was kept: the
    # card's val log loss is the lower one, and the saved weights give it again.
    from core.demo.train_models import verdict_log_loss

    runs = cards[1].training["lm_runs"]
    assert [r["seed"] for r in runs] == [cfg.seed, cfg.seed + 1000]
    assert [r.get("kept", False) for r in runs].count(True) == 1
    kept = next(r for r in runs if r.get("kept"))
    assert kept["val_verdict_log_loss"] == min(r["val_verdict_log_loss"] for r in runs)
    assert cards[1].training["val_verdict_log_loss"] == kept["val_verdict_log_loss"]
    assert verdict_log_loss(backend, val, backend._verdict_ids) == pytest.approx(
        kept["val_verdict_log_loss"], abs=1e-5
    )
    # each run's mixing counts are its own, and the card's are the kept run's
    assert cards[1].training["lm_call_mix"] == kept["lm_call_mix"]
    assert all(sum(r["lm_call_mix"].values()) > 0 for r in runs)
    assert "lm_runs" not in cards[0].training  # the text-only version trains once
    # Trained once, demo-v2 is the first run exactly: the restart changes nothing before it.
    once = train_demo_models(train + val + test, tmp_path / "once", None,
                             replace(cfg, lm_restarts=1))  # fmt: skip
    assert "lm_runs" not in once[1].training and once[1].training["lm_restarts"] == 1
    assert once[1].training["val_verdict_log_loss"] == runs[0]["val_verdict_log_loss"]
    assert once[1].training["lm_call_mix"] == runs[0]["lm_call_mix"]


def test_a_second_run_that_val_likes_better_is_the_one_kept(tmp_path: Path) -> None:
    """The swap: with three runs on these cases a restart wins, and it is what is saved."""
    from core.demo.train_models import verdict_log_loss

    train = make_cases(tmp_path / "img", n=24, seed=6, split="train")
    val = make_cases(tmp_path / "val", n=12, seed=7, split="val")
    cfg = DemoTrainConfig(clip_steps=10, lm_steps=10, batch_size=4, eval_every=5, lm_restarts=3)
    events: list = []
    cards = train_demo_models(train + val, tmp_path / "models", Progress(events.append), cfg)
    runs = cards[1].training["lm_runs"]
    kept = [i for i, r in enumerate(runs) if r.get("kept")]
    assert len(runs) == 3 and len(kept) == 1 and kept[0] > 0, runs
    backend = Registry(tmp_path / "models").load_backend("demo-v2", device="cpu")
    assert verdict_log_loss(backend, val, backend._verdict_ids) == pytest.approx(
        runs[kept[0]]["val_verdict_log_loss"], abs=1e-5
    )
    stages = {e.stage for e in events}
    assert "demo: demo-v2 language model (run 3)" in stages


def test_mixed_scores_stay_a_distribution_best_first() -> None:
    from core.demo.train_models import mixed_scores

    scores = [("A", 0.9), ("B", 0.08), ("C", 0.02)]
    out = mixed_scores(scores, "C", 0.5)
    assert out[0] == ("C", pytest.approx(0.51)) and out[1] == ("A", pytest.approx(0.45))
    assert sum(p for _, p in out) == pytest.approx(1.0)
    assert mixed_scores(scores, "B", 0.0) == scores


def test_mixed_descriptions_keep_the_call_true_and_leave_val_alone(tmp_path: Path) -> None:
    """The LM's training descriptions mixed toward another finding (``call_mix``): the stated
    call in every mixed one still says what the training image shows, some put another finding
    on top of a call that is right (what the LM must learn to read), and val is untouched."""
    import re

    from core.demo.clip import DemoClipConfig
    from core.demo.train_models import _mix_calls
    from core.models.backends.clip_llm import ClipLLMBackend, ClipLLMConfig

    clip = build_demo_clip(tmp_path / "clip", DemoClipConfig(), seed=0)
    lm = build_demo_causal_lm(tmp_path / "lm", DemoLMConfig(), seed=0)
    backend = ClipLLMBackend(
        ClipLLMConfig(
            clip_model=str(clip), lm_model=str(lm), describe_image=True, device="cpu",
            stated_threshold=0.3,
        )
    )  # fmt: skip
    train = make_cases(tmp_path / "img", n=16, seed=1, split="train")
    val = make_cases(tmp_path / "val", n=8, seed=2, split="val")
    plain_train, plain_val = backend.describe(train), backend.describe(val)
    counts = _mix_calls(backend, train, 1.0, seed=0)
    call = re.compile(r"image suggests: ([^(]+) \(.*stated finding: (seen|not seen)")
    changed = disagree = 0
    for _ in range(5):
        assert backend.describe(val) == plain_val
        for case, plain, mixed in zip(train, plain_train, backend.describe(train), strict=True):
            if mixed == plain:
                continue
            changed += 1
            top, said = call.search(mixed).groups()  # type: ignore[union-attr]
            shown = case.error_type != "unsupported_by_image"
            assert (said == "seen") == shown, (case.error_type, mixed)
            disagree += (top.strip() == case.finding) != shown
    assert counts["mixed"] >= changed > 0 and counts["kept_as_is"] > 0
    assert disagree > 0
