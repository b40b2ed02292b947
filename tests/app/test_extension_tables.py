"""The command line and the window offer what the two tables hold, and nothing they do not: the
back ends (``core.models.backends.BACKENDS``) and the retrain stages
(``core.training.retrain_config.STAGES``). A row added to a table and missing here fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli.main import build_parser, main
from app.settings import Settings
from app.workspace import Workspace
from core.models.backends import BACKENDS, backend_names, base_model_slots
from core.training.retrain_config import PIPELINES, STAGES


def test_models_add_offers_every_back_end_that_loads_weights(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = build_parser()
    for name in backend_names(needs_weights=True):
        spec = BACKENDS[name]
        words = ["models", "add", "v", "--backend", name]
        for slot in spec.base_models:
            words += [f"--{slot.key}", f"some/{slot.key}"]
        args = parser.parse_args(words)
        assert args.backend == name
        assert all(getattr(args, s.key) == f"some/{s.key}" for s in spec.base_models)
    for name in backend_names(needs_weights=False):  # nothing to register: it needs no weights
        with pytest.raises(SystemExit):
            parser.parse_args(["models", "add", "v", "--backend", name])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["models", "add", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in backend_names(needs_weights=True):
        assert f"{name}: {BACKENDS[name].summary}" in text


def test_predict_runs_every_back_end_that_needs_no_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A built-in back end runs under its own name on a workspace that has no such version."""
    from app.convert import case_in_from_case
    from feedback_db import open_store
    from tests.core._phantoms import make_cases

    root = tmp_path / "ws"
    cases = make_cases(root / "images", n=3, split="test")
    cases = [
        c.__class__(**{**c.to_dict(), "image": str(Path(c.image).relative_to(root))}) for c in cases
    ]
    with open_store(f"sqlite:///{root / 'medreview.db'}") as store:
        store.add_cases([case_in_from_case(c) for c in cases])
    for name in backend_names(needs_weights=False):
        assert main(["predict", "--version", name, "--workspace", str(root)]) == 0, (
            capsys.readouterr().err
        )
        with open_store(f"sqlite:///{root / 'medreview.db'}") as store:
            row = store.get_model_version(name)
            assert (
                row is not None and row.backend == name and row.base_model == BACKENDS[name].source
            )
            assert len(store.predictions_for_version(name)) == len(cases)


def test_train_offers_every_stage_and_pipeline(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name, stage in STAGES.items():
        assert f"{name} {stage.summary}" in text
    for name, pipeline in PIPELINES.items():
        assert f"{name} {pipeline.summary}" in text


def test_settings_dialog_offers_every_back_end_that_loads_weights(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One Add button per back end that loads weights, one field per base model; a button sends
    `models add` the command line the real parser takes, with the fields that are filled in."""
    from app.gui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(Settings(), workspace=Workspace(tmp_path / "ws"))
    qtbot.addWidget(dialog)
    assert list(dialog.add_buttons) == list(backend_names(needs_weights=True))
    assert list(dialog.model_edits) == list(base_model_slots())
    sent: list[list[str]] = []
    # The command line is what is checked here (the child's run is tests/app/test_gui_settings.py).
    monkeypatch.setattr(dialog.panel, "start", lambda args, *rest: sent.append(list(args)))
    parser = build_parser()
    for name, button in dialog.add_buttons.items():
        assert BACKENDS[name].title in button.text()
        for key, edit in dialog.model_edits.items():
            edit.setText(f"folder/{key}")
        button.click()
        args = parser.parse_args(sent[-1])
        assert (args.verb, args.models_verb, args.backend) == ("models", "add", name)
        for slot in BACKENDS[name].base_models:
            assert getattr(args, slot.key) == f"folder/{slot.key}"
        dialog._version_finished(0, "failed: test")  # re-enables the buttons
    dialog.model_edits["vlm"].setText("")
    dialog.add_buttons["vlm"].click()
    assert "--vlm" not in sent[-1]  # an empty field: the back end's own default


def test_retrain_dialog_says_what_the_pipeline_trains_from_the_stage_table(
    qtbot, tmp_path: Path
) -> None:
    from app.gui.retrain_dialog import RetrainDialog
    from app.qt import QLabel

    class Reader:
        def model_versions(self) -> list:
            return []

    dialog = RetrainDialog(Workspace(tmp_path / "ws"), Reader())
    qtbot.addWidget(dialog)
    text = " ".join(label.text() for label in dialog.findChildren(QLabel))
    for name in PIPELINES["retrain"].stages:
        assert STAGES[name].summary in text
