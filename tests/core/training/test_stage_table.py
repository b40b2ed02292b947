"""The one table of retrain stages (``core.training.retrain_config.STAGES``): every row names a
function that runs, the settings it reads and what it needs; a retrain asked for every stage of
the table runs every one of them, in the table's order, with nothing else naming them."""

from __future__ import annotations

import inspect
import subprocess
import sys
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

from core.models.registry import Registry
from core.runtime.progress import Progress
from core.training.data import TrainingData, write_feedback
from core.training.encoder_config import EncoderSettings
from core.training.judgement import Judgement
from core.training.ppo_config import PPOConfig
from core.training.retrain import RetrainError, check_data, retrain
from core.training.retrain_config import PIPELINES, STAGES, RetrainConfig
from core.training.reward_config import RewardModelConfig
from core.training.sft_config import SFTSettings
from core.training.stages import StageContext

from .conftest import make_cases, make_pairs

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name", list(STAGES))
def test_every_row_names_a_function_its_settings_and_its_data(name: str) -> None:
    stage = STAGES[name]
    assert stage.name == name and stage.summary and "\n" not in stage.summary and stage.needs
    for fn in (stage.runner(), stage.skipped_runner()):
        if fn is None:
            continue
        params = list(inspect.signature(fn).parameters.values())
        assert len(params) == 1 and params[0].annotation in (StageContext, "StageContext")
    section = getattr(RetrainConfig(), stage.config)
    assert is_dataclass(section), f"{name}: RetrainConfig.{stage.config} is not a settings section"


def test_pipelines_and_the_default_are_made_of_the_table() -> None:
    for pipeline in PIPELINES.values():
        assert pipeline.stages and set(pipeline.stages) <= set(STAGES) and pipeline.summary
    assert RetrainConfig().stages == PIPELINES["retrain"].stages
    with pytest.raises(
        ValueError,
        match="stages must be one or more of encoder, sft, reward, ppo, dpo, grpo; got nope",
    ):
        RetrainConfig(stages=("nope",))


def test_every_settings_field_says_what_it_does() -> None:
    """The command line and config files are built from these fields; each needs its help."""
    for cls in (RetrainConfig, EncoderSettings, SFTSettings, RewardModelConfig, PPOConfig):
        for f in fields(cls):
            assert str(f.metadata.get("help", "")).strip(), f"{cls.__name__}.{f.name} has no help"


def test_the_table_is_read_without_the_ml_stack() -> None:
    code = (
        "import sys, core.training.retrain_config as r; [s.summary for s in r.STAGES.values()]; "
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_data_needs_come_from_the_table() -> None:
    """Stages marked as needing preference pairs are refused below min_reward_pairs; the others
    are not, whatever the number of pairs."""
    cases = make_cases(6, seed=40)
    data = TrainingData(
        pairs=make_pairs(cases[:1]), flipped=[], gold=[],
        judgements={c.case_id: Judgement(c.case_id, c.truth_label, c.severity) for c in cases},
        cases={c.case_id: c for c in cases}, prompts=list(cases),
    )  # fmt: skip
    for name, stage in STAGES.items():
        cfg = RetrainConfig(stages=(name,), min_judged_cases=2, min_reward_pairs=5)
        if stage.min_reward_pairs:
            with pytest.raises(
                RetrainError, match=f"1 preference pairs, at least 5 needed for {name}"
            ):
                check_data(data, cfg)
        else:
            check_data(data, cfg)


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Registry:
    from core.demo.lm import build_demo_causal_lm

    root = tmp_path_factory.mktemp("ws")
    work = root / "runs" / "base"
    build_demo_causal_lm(work / "base" / "lm")
    reg = Registry(root / "models")
    reg.create_version("base-v1", "clip-llm", {"lm": "base/lm"}, from_folder=work,
                       settings={"describe_image": False})  # fmt: skip
    return reg


def _config(name: str, stages: tuple[str, ...]) -> RetrainConfig:
    return RetrainConfig(
        name=name, device="cpu", stages=stages, run_sft="yes", min_judged_cases=2, min_reward_pairs=2,
        sft=SFTSettings(epochs=1, batch_size=8),
        reward=RewardModelConfig(epochs=1, batch_size=8),
        ppo=PPOConfig(steps=1, batch_size=2, mini_batch_size=2, max_new_tokens=4),
    )  # fmt: skip


def test_retrain_runs_every_stage_of_the_table_in_its_order(registry, tmp_path) -> None:
    """Asked for every stage (in reverse), the retrain runs each one, in the table's order, and
    records its report on the card; a later retrain that does not ask for the reward stage
    carries the parent's reward model (the stage's ``when_skipped``)."""
    feedback = write_feedback(tmp_path / "fb.jsonl", make_pairs(make_cases(8, seed=41)))
    held = make_cases(4, seed=42, split="val")
    runs = registry.root.parent / "runs"
    events = []
    res = retrain(registry, "base-v1", feedback, held, runs,
                  _config("v-all", tuple(reversed(STAGES))), progress=Progress(events.append))  # fmt: skip
    # A text-only version has no image encoder: that stage says so and records nothing.
    assert set(STAGES) - {"encoder"} <= set(res.card.training), "a stage of the table did not run"
    assert "encoder" not in res.card.training
    said = [e.message for e in events if e.stage == "encoder"]
    assert said == ["skipped: this version has no separate image encoder to fit"]
    started = [e.stage for e in events if e.stage in STAGES]
    assert list(dict.fromkeys(started)) == list(STAGES)
    assert (registry.path("v-all") / "reward_model" / "reward_card.json").is_file()

    feedback = write_feedback(tmp_path / "fb2.jsonl", make_pairs(make_cases(8, seed=43)))
    res = retrain(registry, "v-all", feedback, held, runs, _config("v-sft-after", ("sft",)))
    assert res.card.training["reward"] == {"from_parent": "v-all"}
    assert (registry.path("v-sft-after") / "reward_model" / "reward_card.json").is_file()
