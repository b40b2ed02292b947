"""The encoder stage: image labels from the clinicians' judgements only, a fit that lowers the
val loss (or leaves the encoder exactly as it was), and the retrain stage that registers the new
encoder and re-chooses the stated call's threshold on val."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from core.cases.records import Case
from core.clinical.knowledge import default_knowledge
from core.training.data import TrainingData
from core.training.encoder import (
    ENCODER_DIR,
    fit_encoder,
    image_label,
    label_loss,
    labels_from_judgements,
    labels_from_verdicts,
)
from core.training.encoder_config import EncoderSettings
from core.training.judgement import Judgement
from tests.core._phantoms import make_cases

KB = default_knowledge()


def _case(finding: str, treatment: str, **kw) -> Case:
    return Case(kw.pop("case_id", "c1"), "xray", "", finding, treatment, **kw)


def test_image_label_rules() -> None:
    ptx = "Pneumothorax"
    fits = KB.findings_for("xray")[0]
    f, t = fits.name, fits.acceptable[0]
    wrong = next(x for x in KB.treatments if x not in fits.acceptable)
    assert image_label(_case(f, t), "CORRECT", [], KB) == image_label(
        _case(f, t), "CORRECT", [], KB
    )
    lab = image_label(_case(f, t), "CORRECT", [], KB)
    assert (lab.finding, lab.shown) == (f, True)
    lab = image_label(_case(f, t), "ERROR", [], KB)
    assert (lab.finding, lab.shown) == (f, False)  # the treatment fits: the image is the error
    other = ptx if f != ptx else KB.findings_for("xray")[1].name
    lab = image_label(_case(f, t), "ERROR", [f"ERROR - {f} is not seen; it shows {other}"], KB)
    assert (lab.finding, lab.shown) == (other, True)  # the rationale names the finding shown
    assert image_label(_case(f, wrong), "ERROR", [], KB) is None  # says nothing about the image
    assert image_label(_case("Unknown thing", t), "CORRECT", [], KB) is None


def test_labels_never_read_the_ground_truth() -> None:
    fits = KB.findings_for("ultrasound")[1]
    cases = {
        f"c{i}": Case(f"c{i}", "ultrasound", "", fits.name, fits.acceptable[0], "none", None,
                      split="review", meta={"shown_finding": fits.name})
        for i in range(4)
    }  # fmt: skip
    judgements = {
        "c0": Judgement("c0", "CORRECT"),
        "c1": Judgement("c1", "ERROR", "moderate"),
        "c2": Judgement("c2", "ERROR", "moderate"),
    }
    shown = KB.findings_for("ultrasound")[0].name
    text = f"ERROR - {fits.name} is not seen on this image, which shows {shown}"
    data = TrainingData(
        judgements=judgements, cases=cases, gold=[(cases["c2"], text)], rewritten={("c2", text)}
    )
    got = [(lab.case.case_id, lab.finding, lab.shown) for lab in labels_from_judgements(data, KB)]
    assert got == [("c0", fits.name, True), ("c1", fits.name, False), ("c2", shown, True)]
    scrambled = replace(
        data,
        cases={
            k: replace(c, error_type="unsupported_by_image", severity="critical", meta={"x": 1})
            for k, c in cases.items()
        },
    )
    again = [
        (lab.case.case_id, lab.finding, lab.shown) for lab in labels_from_judgements(scrambled, KB)
    ]
    assert again == got


def test_label_loss_is_cross_entropy_or_its_complement() -> None:
    logits = torch.tensor([[2.0, 0.0, float("-inf")], [0.0, 1.0, float("-inf")]])
    target = torch.tensor([0, 0])
    loss = label_loss(logits, target, torch.tensor([True, False]))
    p = logits.softmax(-1)
    assert torch.allclose(loss, torch.stack([-p[0, 0].log(), -(1 - p[1, 0]).log()]))


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> dict[str, list[Case]]:
    root = tmp_path_factory.mktemp("phantoms")
    return {
        "train": make_cases(root / "train", n=48, seed=3, split="review"),
        "val": make_cases(root / "val", n=24, seed=4, split="val"),
    }


def _clip(folder: Path):
    import open_clip

    from core.demo.clip import build_demo_clip

    build_demo_clip(folder, seed=0)
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    return model, open_clip.get_tokenizer(f"local-dir:{folder}"), preprocess


def _load(case: Case):
    from core.models.backends._policy import load_pil

    return load_pil(Path(case.image))


def test_fit_lowers_the_val_loss_and_keeps_the_better_encoder(phantoms, tmp_path) -> None:
    model, tok, pre = _clip(tmp_path / "clip")
    labels = labels_from_verdicts(phantoms["train"], KB)  # verdicts as if judged
    val = labels_from_verdicts(phantoms["val"], KB)
    assert {lab.shown for lab in labels} == {True, False}
    cfg = EncoderSettings(steps=60, eval_every=10, learning_rate=2e-3, batch_size=16)
    rep = fit_encoder(model, tok, pre, _load, labels, val, cfg)
    assert rep.kept and rep.best_step > 0
    assert rep.best_val_loss < rep.start_val_loss
    assert rep.labels == len(labels) and rep.val_labels == len(val)
    assert not model.training


def _fitted_clip(phantoms, folder: Path):
    """A CLIP first fitted to the phantoms, so a bad fine-tune can only make val worse."""
    model, tok, pre = _clip(folder)
    labels = labels_from_verdicts(phantoms["train"], KB) + labels_from_verdicts(phantoms["val"], KB)
    cfg = EncoderSettings(steps=60, eval_every=60, learning_rate=2e-3, batch_size=16)
    fit_encoder(model, tok, pre, _load, labels, labels, cfg)
    return model, tok, pre


def test_a_fit_that_does_not_help_leaves_the_encoder_exactly_as_it_was(phantoms, tmp_path) -> None:
    model, tok, pre = _fitted_clip(phantoms, tmp_path / "clip")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    labels = labels_from_verdicts(phantoms["train"], KB)
    # Labels that contradict val's, at a rate that wrecks the encoder at the first step.
    wrong = [replace(lab, shown=not lab.shown) for lab in labels]
    val = labels_from_verdicts(phantoms["val"], KB)
    cfg = EncoderSettings(steps=4, eval_every=2, learning_rate=0.5, batch_size=16)
    rep = fit_encoder(model, tok, pre, _load, wrong, val, cfg)
    assert not rep.kept and rep.best_step == 0
    assert rep.best_val_loss == rep.start_val_loss
    assert all(h[2] > rep.start_val_loss for h in rep.history[1:])  # it did get worse
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # batch-norm statistics too


def test_retrain_stage_registers_the_new_encoder_and_rechooses_the_threshold(
    phantoms, tmp_path
) -> None:
    from core.demo.clip import WEIGHTS_FILE, build_demo_clip
    from core.demo.lm import build_demo_causal_lm
    from core.models.registry import Registry
    from core.training.data import PreferencePair, write_feedback
    from core.training.retrain import retrain
    from core.training.retrain_config import RetrainConfig

    work = tmp_path / "runs" / "base"
    build_demo_clip(work / "base" / "clip", seed=0)
    build_demo_causal_lm(work / "base" / "lm")
    reg = Registry(tmp_path / "models")
    reg.create_version(
        "v2", "clip-llm", {"clip": "base/clip", "lm": "base/lm"}, from_folder=work,
        settings={"stated_threshold": 0.5},
    )  # fmt: skip
    train = phantoms["train"]
    pairs = [
        PreferencePair(
            c, f"{c.truth_label} - judged", f"{'CORRECT' if c.is_error else 'ERROR'} - judged",
            true_label=c.truth_label, severity=c.severity,
        )
        for c in train
    ]  # fmt: skip
    feedback = write_feedback(tmp_path / "fb.jsonl", pairs)
    cfg = RetrainConfig(
        name="v3", device="cpu", stages=("encoder",), run_sft="no", min_judged_cases=2,
        encoder=EncoderSettings(steps=60, eval_every=10, learning_rate=2e-3, batch_size=16),
    )  # fmt: skip
    before = (reg.path("v2") / "base" / "clip" / WEIGHTS_FILE).read_bytes()
    res = retrain(reg, "v2", feedback, phantoms["val"], tmp_path / "runs", cfg, cases=train)
    card = reg.card("v3")
    rep = card.training["encoder"]
    assert rep["kept"] and rep["best_val_loss"] < rep["start_val_loss"]
    assert card.base_models == {"clip": ENCODER_DIR, "lm": "base/lm"}
    assert not (reg.path("v3") / "base" / "clip").exists()  # the parent's encoder is not carried
    assert card.settings["stated_threshold"] == rep["threshold_after"]
    assert rep["threshold_before"] == 0.5
    new = load_file(reg.path("v3") / ENCODER_DIR / WEIGHTS_FILE)
    old = load_file(reg.path("v2") / "base" / "clip" / WEIGHTS_FILE)
    assert any(not torch.equal(new[k], old[k]) for k in old)
    assert (reg.path("v2") / "base" / "clip" / WEIGHTS_FILE).read_bytes() == before  # parent intact
    reg.verify("v3")
    backend = reg.load_backend("v3", device="cpu")
    assert backend.config.stated_threshold == card.settings["stated_threshold"]
    assert Path(backend.scorer.source).resolve() == (reg.path("v3") / ENCODER_DIR).resolve()
    assert len(res.verdicts) == len(phantoms["val"])
    assert json.loads(card.to_json())["training"]["config"]["encoder"]["steps"] == 60
    # What is registered is what was measured: the reloaded version gives the same verdicts.
    again = backend.predict(phantoms["val"], batch_size=8)
    assert [v.text for v in again] == [v.text for v in res.verdicts]

    # A second encoder stage from v3 registers its own encoder, not the parent's of that name.
    cfg2 = replace(cfg, name="v4")
    fewer = write_feedback(tmp_path / "fb2.jsonl", pairs[:40])
    retrain(reg, "v3", fewer, phantoms["val"], tmp_path / "runs", cfg2, cases=train)
    rep4 = reg.card("v4").training["encoder"]
    w3 = (reg.path("v3") / ENCODER_DIR / WEIGHTS_FILE).read_bytes()
    w4 = (reg.path("v4") / ENCODER_DIR / WEIGHTS_FILE).read_bytes()
    assert (w4 != w3) == rep4["kept"]
    reg.verify("v4")

    # Not kept (a rate that only makes val worse): the parent's encoder and threshold, carried.
    cfg3 = replace(
        cfg, name="v5", encoder=EncoderSettings(steps=2, eval_every=1, learning_rate=0.5)
    )
    fewer = write_feedback(tmp_path / "fb3.jsonl", pairs[:44])
    retrain(reg, "v3", fewer, phantoms["val"], tmp_path / "runs", cfg3, cases=train)
    card5 = reg.card("v5")
    assert not card5.training["encoder"]["kept"]
    assert card5.base_models == card.base_models and card5.settings == card.settings
    assert (reg.path("v5") / ENCODER_DIR / WEIGHTS_FILE).read_bytes() == w3
    reg.verify("v5")
