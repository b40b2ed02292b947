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
    # SFT ran: PPO's reference is the SFT model, so the first step's KL is exactly 0.
    assert card.training["ppo"]["reference"] == "sft"
    assert card.training["ppo"]["history"][0]["kl"] == 0.0
    backend = registry.load_backend("v-ok", device="cpu")
    # The saved version (base weights + one adapter folder) answers as the trained policy did.
    again = backend.predict(held)
    assert [v.text for v in again] == [v.text for v in res.verdicts]
    assert [v.confidence for v in again] == pytest.approx([v.confidence for v in res.verdicts])


def test_ppo_from_an_sft_version_keeps_the_parent_as_reference(registry, tmp_path):
    """SFT in one version, reward model + PPO in the next (as the benchmark does): PPO's reference
    is the parent (the SFT model), not the base weights under its adapter."""
    feedback = write_feedback(tmp_path / "fb.jsonl", make_pairs(make_cases(12, seed=5)))
    held = make_cases(4, seed=6, split="test")
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
    res = retrain(registry, "base-v1", feedback, make_cases(4, seed=6, split="test"),
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
