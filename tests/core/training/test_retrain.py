"""The retrain pipeline on a registry version: a new version only on success, what it learns from
(said first, refused when too little or nothing new), the gate against the active version on val
(its outcomes, in true words), cancel."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from core.clinical.verdicts import make_verdict
from core.models.registry import Registry
from core.runtime.progress import Canceled, Progress
from core.training.data import write_feedback
from core.training.ppo_config import PPOConfig
from core.training.retrain import retrain
from core.training.retrain_config import RetrainConfig
from core.training.reward_config import RewardModelConfig
from core.training.safety import safety_gate
from core.training.sft_config import SFTSettings

from .conftest import make_cases, make_pairs


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Registry:
    from core.demo.lm import build_demo_causal_lm

    root = tmp_path_factory.mktemp("ws")
    work = root / "runs" / "base"
    build_demo_causal_lm(work / "base" / "lm")
    reg = Registry(root / "models")
    reg.create_version(
        "base-v1", "clip-llm", {"lm": "base/lm"}, from_folder=work,
        settings={"describe_image": False},
    )  # fmt: skip
    return reg


def small_config(name: str) -> RetrainConfig:
    return RetrainConfig(
        name=name,
        device="cpu",
        sft_min_examples=2,
        min_judged_cases=2,
        min_reward_pairs=2,
        sft=SFTSettings(epochs=1, batch_size=8),
        reward=RewardModelConfig(epochs=1, batch_size=8),
        ppo=PPOConfig(steps=2, batch_size=4, mini_batch_size=2, max_new_tokens=6),
    )


def test_retrain_registers_a_version_with_adapter_and_reward_model(registry, tmp_path):
    feedback = write_feedback(tmp_path / "fb.jsonl", make_pairs(make_cases(16, seed=1)))
    held = make_cases(6, seed=2, split="val")
    events = []
    res = retrain(
        registry, "base-v1", feedback, held, registry.root.parent / "runs",
        small_config("v-ok"), progress=Progress(events.append),
    )  # fmt: skip
    folder = registry.path("v-ok")
    assert (folder / "adapter" / "adapter_model.safetensors").is_file()
    assert (folder / "reward_model" / "reward_card.json").is_file()
    assert (folder / "base" / "lm" / "model.safetensors").is_file()
    card = registry.card("v-ok")
    assert card.parent == "base-v1" and card.metrics["n"] == len(held)
    assert {"sft", "reward", "ppo", "gate"} <= set(card.training)
    assert len(res.verdicts) == len(held)
    stages = {e.stage for e in events}
    assert {"data", "evaluate-active", "sft", "reward", "ppo", "evaluate", "register"} <= stages
    said = next(e.message for e in events if e.stage == "data")
    assert "16 judged cases" in said and "gold answers" in said  # before anything trained
    assert card.training["data"]["judged_cases"] == 16
    held_out = card.training["reward"]["held_out"]
    assert held_out["groups"]["flipped"]["pairs"] > 0  # measured on verdict-flipped answers too
    registry.verify("v-ok")  # the hashes on the card match the files
    # SFT ran: PPO's reference is the SFT model, so the first step's KL is exactly 0.
    assert card.training["ppo"]["reference"] == "sft"
    assert card.training["ppo"]["history"][0]["kl"] == 0.0
    # PPO checked the policy on val before its first step and after its last, and kept the
    # better (the version's val metrics are the kept check's).
    checks = card.training["ppo"]["checks"]
    assert [c["step"] for c in checks] == [0, 2]
    kept = card.training["ppo"]["kept_step"]
    best = max(c["score"] for c in checks)
    assert kept == max(c["step"] for c in checks if c["score"] == best)
    assert card.metrics["mean_reward"] == pytest.approx(best)
    backend = registry.load_backend("v-ok", device="cpu")
    # The saved version (base weights + one adapter folder) answers as the trained policy did.
    again = backend.predict(held)
    assert [v.text for v in again] == [v.text for v in res.verdicts]
    assert [v.confidence for v in again] == pytest.approx([v.confidence for v in res.verdicts])


def test_ppo_from_an_sft_version_keeps_the_parent_as_reference(registry, tmp_path):
    """SFT in one version, reward model + PPO in the next (as the benchmark does): PPO's reference
    is the parent (the SFT model), not the base weights under its adapter."""
    feedback = write_feedback(tmp_path / "fb.jsonl", make_pairs(make_cases(12, seed=5)))
    held = make_cases(4, seed=6, split="val")
    runs = registry.root.parent / "runs"
    cfg = small_config("v-sft-only")
    cfg.stages, cfg.run_sft = ("sft",), "yes"
    retrain(registry, "base-v1", feedback, held, runs, cfg)
    cfg = small_config("v-rl-on-sft")
    cfg.stages = ("reward", "ppo")
    res = retrain(registry, "v-sft-only", feedback, held, runs, cfg)
    ppo = res.card.training["ppo"]
    assert ppo["reference"] == "parent" and ppo["history"][0]["kl"] == 0.0
    again = registry.load_backend("v-rl-on-sft", device="cpu").predict(held)
    assert [v.text for v in again] == [v.text for v in res.verdicts]


def test_without_an_adapter_ppo_keeps_the_base_reference(registry, tmp_path):
    feedback = write_feedback(tmp_path / "fb.jsonl", make_pairs(make_cases(8, seed=5)))
    cfg = small_config("v-nosft")
    cfg.run_sft = "no"
    cfg.stages = ("ppo",)
    res = retrain(registry, "base-v1", feedback, make_cases(4, seed=6, split="val"),
                  registry.root.parent / "runs", cfg)  # fmt: skip
    assert "sft" not in res.card.training
    assert res.card.training["ppo"]["reference"] == "base"
    assert (registry.path("v-nosft") / "adapter" / "adapter_model.safetensors").is_file()


def test_cancel_leaves_no_version_and_no_run_folder(registry, tmp_path):
    feedback = write_feedback(tmp_path / "fb.jsonl", make_pairs(make_cases(12, seed=3)))
    runs = tmp_path / "runs"

    def cancel_in_ppo(event):
        if event.stage == "ppo" and event.step == 1:
            progress.cancel()

    progress = Progress(cancel_in_ppo)
    before = sorted(p.name for p in registry.root.iterdir())
    with pytest.raises(Canceled):
        retrain(
            registry, "base-v1", feedback, make_cases(4, seed=4, split="val"), runs,
            small_config("v-cancel"), progress=progress,
        )  # fmt: skip
    assert sorted(p.name for p in registry.root.iterdir()) == before
    assert list(runs.iterdir()) == []


def test_gate_outcomes_in_true_words():
    cases = make_cases(60, seed=5)[:30]
    crit = next(c for c in cases if c.severity == "critical")
    truth = [make_verdict(f"{c.truth_label} - x") for c in cases]
    correct = [c for c in cases if not c.is_error]
    # 1. promoted: nothing lost, FPR 0% within the limit
    ok = safety_gate(cases, truth, truth, active_name="demo-v2")
    assert ok.promote and "within the 10% limit" in ok.reason and "demo-v2" in ok.reason
    assert "30 val cases" in ok.reason
    # 2. refused: a critical error the active version caught is missed
    new = [
        make_verdict("CORRECT - x") if c is crit else v for c, v in zip(cases, truth, strict=True)
    ]
    lost = safety_gate(cases, truth, new, active_name="demo-v2")
    assert not lost.promote and lost.lost_critical == [crit.case_id]
    assert lost.reason.startswith("not promoted") and "critical" in lost.reason
    # 3. refused: false positives above the limit and above the active version's
    alarms = [make_verdict("ERROR - x") for _ in cases]
    high = safety_gate(cases, truth, alarms)
    assert not high.promote and "100.0% is above the 10% limit and above" in high.reason
    # ...but a version that lowers an already high rate is promoted, and the reason says the
    # rate is still above the limit (never "within limit").
    half = {c.case_id for c in correct[: len(correct) // 2]}
    fewer = [
        make_verdict("ERROR - x")
        if c.case_id in half or c.is_error
        else make_verdict("CORRECT - x")
        for c in cases
    ]
    better = safety_gate(cases, alarms, fewer)
    assert better.promote and "above the 10% limit but not above" in better.reason
    assert "within" not in better.reason
    assert ok.reward == ok.active_reward and "is not below the active version's" in ok.reason
    # 4. refused: nothing critical lost and no false alarm, but wrong more often (here every
    # non-critical error is passed): the mean clinical reward falls below the active version's.
    passes = [
        make_verdict("CORRECT - x") if c.is_error and c.severity != "critical" else v
        for c, v in zip(cases, truth, strict=True)
    ]
    assert any(
        p.label.value == "CORRECT" and c.is_error for c, p in zip(cases, passes, strict=True)
    )
    worse = safety_gate(cases, truth, passes, active_name="demo-v2")
    assert not worse.promote and worse.lost_critical == [] and worse.fpr == 0.0
    assert worse.reward < worse.active_reward and worse.accuracy < worse.active_accuracy
    assert worse.reasons == [
        f"its mean clinical reward {worse.reward:+.3f} is below the active version's "
        f"{worse.active_reward:+.3f} (accuracy {worse.accuracy:.1%} against 100.0%)"
    ]
    # other verdicts worth the same (each misses one error of the same severity, not the same
    # one) tie, and a tie is promoted
    sev = next(
        c.severity for c in cases
        if c.is_error and c.severity != "critical"
        and sum(d.is_error and d.severity == c.severity for d in cases) >= 2
    )  # fmt: skip
    x, y = [c for c in cases if c.is_error and c.severity == sev][:2]

    def missing(case):
        return [
            make_verdict("CORRECT - x") if c is case else v
            for c, v in zip(cases, truth, strict=True)
        ]

    tie = safety_gate(cases, missing(x), missing(y))
    assert [v.label for v in missing(x)] != [v.label for v in missing(y)]
    assert tie.promote and tie.reward == pytest.approx(tie.active_reward) and tie.reward < 2.5
    # no case with ground truth: nothing to compare, said in words
    blind = [replace(c, error_type=None, severity=None) for c in cases]
    none = safety_gate(blind, truth, passes)
    assert none.promote and "no cases with ground truth to compare clinical rewards" in none.reason
    assert "nan" not in none.reason


def test_gate_compares_with_the_active_version_on_val(registry, tmp_path):
    """The parent is not the active version: the gate measures the active one (here the bare
    base), on the val cases it is given, and names it."""
    feedback = write_feedback(tmp_path / "fb.jsonl", make_pairs(make_cases(12, seed=8)))
    runs = registry.root.parent / "runs"
    cfg = small_config("v-parent")
    cfg.stages, cfg.run_sft = ("sft",), "yes"
    retrain(registry, "base-v1", feedback, make_cases(4, seed=9, split="val"), runs, cfg)
    cfg = small_config("v-child")
    cfg.stages = ("reward",)
    val = make_cases(6, seed=10, split="val")
    test = make_cases(3, seed=11, split="test")
    res = retrain(
        registry, "v-parent", feedback, val, runs, cfg, active="base-v1", report_cases=test
    )
    assert res.card.training["active"]["name"] == "base-v1" and res.gate.active == "base-v1"
    assert res.gate.split == "val" and res.gate.n == len(val) and "base-v1" in res.gate.reason
    assert res.metrics["n"] == len(val)  # decided on val only
    assert [c.case_id for c in res.heldout] == [c.case_id for c in val + test]  # test: recorded


def _tree(*roots: Path) -> set[str]:
    """Every path under ``roots`` (a refusal must leave the registry and the runs folder as they were)."""
    return {str(q) for r in roots if r.exists() for q in r.rglob("*")}


def test_refuses_too_little_and_nothing_new(registry, tmp_path):
    from core.training.retrain import RetrainError

    feedback = write_feedback(tmp_path / "fb.jsonl", make_pairs(make_cases(6, seed=12)))
    val = make_cases(4, seed=13, split="val")
    runs = registry.root.parent / "runs"
    cfg = small_config("v-few")
    cfg.min_judged_cases = 10
    before = _tree(registry.root, runs)
    with pytest.raises(
        RetrainError, match=r"too little to learn from .*6 judged cases.* at least 10"
    ):
        retrain(registry, "base-v1", feedback, val, runs, cfg)
    assert _tree(registry.root, runs) == before and "v-few" not in [v.name for v in registry.list()]
    cfg = small_config("v-once")
    cfg.stages = ("reward",)
    retrain(registry, "base-v1", feedback, val, runs, cfg)
    again = small_config("v-twice")
    again.stages = ("reward",)
    before = _tree(registry.root, runs)
    with pytest.raises(RetrainError, match="nothing new since v-once"):
        retrain(registry, "v-once", feedback, val, runs, again)
    assert _tree(registry.root, runs) == before and "v-twice" not in [
        v.name for v in registry.list()
    ]


def test_ratings_on_val_and_test_cases_are_left_out(registry, tmp_path):
    train = make_cases(8, seed=14)
    val = make_cases(4, seed=15, split="val")
    feedback = write_feedback(tmp_path / "fb.jsonl", make_pairs(train + val))
    cfg = small_config("v-left")
    cfg.stages = ("reward",)
    events = []
    res = retrain(registry, "base-v1", feedback, val, registry.root.parent / "runs", cfg,
                  progress=Progress(events.append))  # fmt: skip
    assert res.data["judged_cases"] == 8
    assert any("held-out" in k for k in res.data["left_out"])


def test_bad_config_is_refused():
    with pytest.raises(ValueError):
        RetrainConfig(stages=("nope",))
    with pytest.raises(ValueError):
        RetrainConfig(run_sft="sometimes")
    with pytest.raises(ValueError):
        RetrainConfig(min_judged_cases=0)


def test_versions_dir_untouched_on_missing_pairs(registry, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    from core.training.retrain import RetrainError

    before = _tree(registry.root, tmp_path / "runs")
    with pytest.raises(RetrainError, match="too little to learn from"):
        retrain(
            registry,
            "base-v1",
            empty,
            make_cases(2, seed=1, split="val"),
            tmp_path / "runs",
            small_config("v-x"),
        )
    assert _tree(registry.root, tmp_path / "runs") == before
