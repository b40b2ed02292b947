"""``medreview train``'s options are built from the config dataclasses and the stage table: a
field without an option, a stage without a sub-command or an unknown key in a ``--config`` file
fails here. Parsing only: nothing trains."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

from app.cli.config_args import build, options, read_config_file, typed_values
from app.cli.main import build_parser, main
from app.cli.train import ALIASES, RENAME, add_training_options, build_config, subcommands
from core.training.ppo_config import PPOConfig
from core.training.retrain_config import PIPELINES, STAGES, RetrainConfig

OPTIONS = options(RetrainConfig, RENAME)


def _parse(*argv: str):
    return build_parser().parse_args(["train", *argv])


def _sample(opt) -> tuple[list[str], object]:
    """Command-line words for ``opt`` and the value they must give (not its default)."""
    if opt.kind is bool:
        return ([("--no-" + opt.flag[2:]) if opt.default() else opt.flag], not opt.default())
    if opt.choices is not None:
        pick = next(c for c in opt.choices if c != opt.default())
        return ([opt.flag, pick], (pick,) if opt.kind is tuple else pick)
    if opt.kind is tuple:
        return ([opt.flag, "a_proj, b_proj"], ("a_proj", "b_proj"))
    if opt.kind is int:
        return ([opt.flag, "3"], 3)
    if opt.kind is float:
        return ([opt.flag, "1e-3"], 1e-3)
    return ([opt.flag, "some-name"], "some-name")


def _leaf_keys(cls: type, prefix: str = "") -> list[str]:
    out = []
    for f in fields(cls):
        value = getattr(cls(), f.name)
        out += (
            _leaf_keys(type(value), f"{prefix}{f.name}.")
            if is_dataclass(value)
            else [prefix + f.name]
        )
    return out


def test_every_config_field_has_an_option() -> None:
    """Counted from the dataclasses themselves: a field the train parser has no option for fails."""
    parser = argparse.ArgumentParser()
    add_training_options(parser, ("ppo",))
    dests = {a.dest for a in parser._actions}
    keys = _leaf_keys(RetrainConfig)
    assert len(keys) > 60 and {"cfg." + k for k in keys} <= dests


def test_every_config_field_is_an_option_of_every_subcommand() -> None:
    """Each field of RetrainConfig and its sections (sft, reward, ppo) is an option, typed, on
    every sub-command; what it is given reaches that field and no other."""
    keys = {o.key for o in OPTIONS}
    assert {"max_fpr", "sft.epochs", "reward.kind", "ppo.init_kl_coef", "ppo.steps"} <= keys
    for kind in subcommands():
        for opt in OPTIONS:
            words, value = _sample(opt)
            assert typed_values(_parse(kind, *words)) == {opt.key: value}, (kind, opt.flag)
            if opt.optional:
                assert typed_values(_parse(kind, opt.flag, "none")) == {opt.key: None}


def test_help_shows_every_option_with_its_fields_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "ppo", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for opt in OPTIONS:
        assert opt.flag in text
        assert " ".join(opt.help.split()) in text, opt.key
    assert "(default: ppo)" in text  # the sub-command's own stages


def test_options_scripts_already_use_keep_working() -> None:
    cfg = build_config(_parse("retrain", "--steps", "2", "--epochs", "1", "--batch-size", "4",
                              "--device", "cpu", "--max-fpr", "0.2", "--min-judged", "5", "--seed", "7"))  # fmt: skip
    assert (cfg.ppo.steps, cfg.sft.epochs, cfg.reward.epochs) == (2, 1.0, 1.0)
    assert (cfg.ppo.batch_size, cfg.ppo.mini_batch_size) == (4, 4)  # capped at the batch
    assert (cfg.device, cfg.max_fpr, cfg.min_judged_cases) == ("cpu", 0.2, 5)
    assert (cfg.sft.seed, cfg.reward.seed, cfg.ppo.seed) == (7, 7, 7)
    assert ALIASES["ppo.steps"] == ("--steps",)
    # A field's own option wins over a shortcut that also sets it.
    cfg = build_config(_parse("retrain", "--epochs", "1", "--sft-epochs", "5", "--batch-size", "4",
                              "--ppo-mini-batch-size", "2"))  # fmt: skip
    assert (cfg.sft.epochs, cfg.reward.epochs, cfg.ppo.mini_batch_size) == (5.0, 1.0, 2)


def test_every_stage_and_pipeline_is_a_subcommand_and_a_stages_value() -> None:
    assert set(subcommands()) == set(PIPELINES) | set(STAGES)
    for name, pipeline in PIPELINES.items():
        assert build_config(_parse(name)).stages == pipeline.stages
    for name in STAGES:
        cfg = build_config(_parse(name))
        assert cfg.stages == (name,)
        assert cfg.run_sft == ("yes" if name == "sft" else "auto")  # SFT alone always trains
        assert build_config(_parse("retrain", "--stages", name)).stages == (name,)
    assert build_config(_parse("retrain", "--stages", ",".join(STAGES))).stages == tuple(STAGES)


def test_an_unknown_stage_is_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "retrain", "--stages", "reward,nope"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("stages takes encoder | sft | reward | ppo | dpo | grpo, got nope")
    assert len(err) == 2  # the short usage line, then the sentence


def test_config_file_sets_values_and_an_option_overrides_it(tmp_path: Path) -> None:
    config = tmp_path / "retrain.yaml"
    config.write_text(
        "max_fpr: 0.05\nstages: [reward, ppo]\nflipped_pairs: false\n"
        "sft:\n  target_modules: [q_proj]\n  batch_size: null\n"
        "ppo:\n  steps: 7\n  learning-rate: 1e-5\n",  # YAML reads 1e-5 as text; the key may use -
        encoding="utf-8",
    )
    cfg = build_config(_parse("retrain", "--config", str(config)))
    assert (cfg.max_fpr, cfg.stages, cfg.flipped_pairs) == (0.05, ("reward", "ppo"), False)
    assert (cfg.sft.target_modules, cfg.sft.batch_size) == (("q_proj",), None)
    assert (cfg.ppo.steps, cfg.ppo.learning_rate) == (7, 1e-5)
    assert cfg.ppo.batch_size == PPOConfig.batch_size  # what the file leaves out keeps its default
    cfg = build_config(_parse("retrain", "--config", str(config), "--ppo-steps", "9", "--max-fpr", "0.3",
                              "--flipped-pairs"))  # fmt: skip
    assert (cfg.ppo.steps, cfg.max_fpr, cfg.flipped_pairs, cfg.ppo.learning_rate) == (
        9,
        0.3,
        True,
        1e-5,
    )

    as_json = tmp_path / "retrain.json"
    as_json.write_text(json.dumps({"ppo": {"steps": 3}, "min_judged_cases": 4}), encoding="utf-8")
    assert read_config_file(as_json, RetrainConfig) == {"ppo.steps": 3, "min_judged_cases": 4}
    as_toml = tmp_path / "retrain.toml"
    as_toml.write_text("min_judged_cases = 4\n[reward]\nkind = 'text'\n", encoding="utf-8")
    cfg = build(RetrainConfig, read_config_file(as_toml, RetrainConfig))
    assert (cfg.min_judged_cases, cfg.reward.kind) == (4, "text")


@pytest.mark.parametrize("body, words", [
    ("ppo:\n  stepz: 3\n", "unknown key 'ppo.stepz' (the ppo section takes: adaptive_kl, batch_size,"),
    ("learning_rate: 0.1\n", "unknown key 'learning_rate' (RetrainConfig takes: balance_pairs,"),
    ("ppo:\n  steps: ten\n", "ppo.steps takes a whole number, got 'ten'"),
    ("reward:\n  kind: pixels\n", "reward.kind takes auto | text | image, got pixels"),
    ("ppo: [1\n", "not valid YAML at line 2"),
    ("- 1\n- 2\n", "a config file holds keys and values (a mapping), not list"),
])  # fmt: skip
def test_a_bad_config_file_is_one_sentence_naming_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, words: str
) -> None:
    config = tmp_path / "retrain.yaml"
    config.write_text(body, encoding="utf-8")
    rc = main(["train", "ppo", "--config", str(config), "--workspace", str(tmp_path / "ws")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"medreview train: {config}: ") and words in err
    assert not (tmp_path / "ws").exists()  # refused before the workspace is touched


def test_a_missing_config_file_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["train", "ppo", "--config", str(tmp_path / "nope.yaml")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "nope.yaml: cannot read the config file (No such file or directory)" in err
