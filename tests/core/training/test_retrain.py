"""The retrain pipeline on a registry version: a new version only on success, the gate, cancel."""

from __future__ import annotations

import pytest

from core.progress import Canceled, Progress
from core.registry import Registry
from core.training.data import write_feedback
from core.training.ppo_config import PPOConfig
from core.training.retrain import retrain
from core.training.retrain_config import RetrainConfig
from core.training.reward_config import RewardModelConfig
from core.training.safety import safety_gate
from core.training.sft_config import SFTSettings
from core.verdicts import make_verdict

from .conftest import make_cases, make_pairs


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Registry:
    from core.models.demo_lm import build_demo_causal_lm

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
        sft=SFTSettings(epochs=1, batch_size=8),
        reward=RewardModelConfig(epochs=1, batch_size=8),
        ppo=PPOConfig(steps=2, batch_size=4, mini_batch_size=2, max_new_tokens=6),
    )


def test_retrain_registers_a_version_with_adapter_and_reward_model(registry, tmp_path):
    feedback = write_feedback(tmp_path / "fb.jsonl", make_pairs(make_cases(16, seed=1)))
    held = make_cases(6, seed=2, split="test")
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
    assert {"evaluate-parent", "sft", "reward", "ppo", "evaluate", "register"} <= stages
    registry.verify("v-ok")  # the hashes on the card match the files
    backend = registry.load_backend("v-ok", device="cpu")
    assert len(backend.predict(held[:2])) == 2
    assert not [p for p in (registry.root.parent / "runs").iterdir() if p.name.startswith("v-ok")]


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
            registry, "base-v1", feedback, make_cases(4, seed=4, split="test"), runs,
            small_config("v-cancel"), progress=progress,
        )  # fmt: skip
    assert sorted(p.name for p in registry.root.iterdir()) == before
    assert list(runs.iterdir()) == []


def test_gate_blocks_lost_critical_and_high_fpr():
    cases = [c for c in make_cases(60, seed=5)][:30]
    crit = next(c for c in cases if c.severity == "critical")
    truth = [make_verdict(f"{c.truth_label} - x") for c in cases]
    new = [
        make_verdict("CORRECT - x") if c is crit else v for c, v in zip(cases, truth, strict=True)
    ]
    decision = safety_gate(cases, truth, new)
    assert not decision.promote and decision.lost_critical == [crit.case_id]
    alarms = [make_verdict("ERROR - x") for _ in cases]
    decision = safety_gate(cases, truth, alarms)
    assert not decision.promote and "false positive rate" in decision.reason
    assert safety_gate(cases, truth, truth).promote


def test_bad_config_is_refused():
    with pytest.raises(ValueError):
        RetrainConfig(stages=("nope",))
    with pytest.raises(ValueError):
        RetrainConfig(run_sft="sometimes")


def test_versions_dir_untouched_on_missing_pairs(registry, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    from core.training.retrain import RetrainError

    with pytest.raises(RetrainError):
        retrain(
            registry,
            "base-v1",
            empty,
            make_cases(2, seed=1),
            tmp_path / "runs",
            small_config("v-x"),
        )
    assert not (registry.root / "v-x").exists()
