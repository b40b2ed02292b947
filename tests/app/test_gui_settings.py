"""Settings: the validated, versioned model, its file, and the settings and first-run dialogs."""

from __future__ import annotations

import json

import pytest

from app.settings import (
    SETTINGS_VERSION,
    Settings,
    SettingsError,
    load_settings,
    save_settings,
    settings_path,
)


def test_defaults_round_trip(tmp_path) -> None:
    path = tmp_path / "s.json"
    assert load_settings(path) == Settings()
    s = Settings(reviewer_name="Dr A", device="cpu")
    save_settings(s, path)
    assert load_settings(path) == s
    assert json.loads(path.read_text())["version"] == SETTINGS_VERSION
    # Owner-only (the reviewer's name), and replaced atomically: no temporary file is left.
    assert path.stat().st_mode & 0o077 == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


def test_tests_never_use_the_real_settings_file(settings_file) -> None:
    assert settings_path() == settings_file


@pytest.mark.parametrize(
    "change, word",
    [
        ({"device": "tpu"}, "device"),
        ({"reviewer_role": " "}, "reviewer_role"),
        ({"queue_order": "random"}, "queue_order"),
        ({"reviewer_name": " Dr A"}, "spaces"),
    ],
)
def test_invalid_values_are_refused_in_words(change, word) -> None:
    with pytest.raises(SettingsError, match=word):
        Settings().updated(**change)


def test_version_1_file_is_migrated(tmp_path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"version": 1, "user": "Dr Old", "device": "cpu"}))
    s = load_settings(path)
    assert (s.reviewer_name, s.device, s.queue_order, s.version) == (
        "Dr Old",
        "cpu",
        "uncertainty",
        SETTINGS_VERSION,
    )


def test_broken_or_newer_file_raises_with_its_path(tmp_path) -> None:
    path = tmp_path / "s.json"
    path.write_text("{not json")
    with pytest.raises(SettingsError, match=str(path)):
        load_settings(path)
    path.write_text(json.dumps({"version": SETTINGS_VERSION + 1}))
    with pytest.raises(SettingsError, match="newer"):
        load_settings(path)
    path.write_text(json.dumps({"version": SETTINGS_VERSION, "colour": "red"}))
    with pytest.raises(SettingsError, match="colour"):
        load_settings(path)


def test_settings_dialog_validates_and_saves(qtbot, window, settings_file) -> None:
    dialog = window.open_settings()
    dialog.name.setText("")
    dialog.buttons.button(dialog.buttons.StandardButton.Save).click()
    assert "name" in dialog.error.text() and dialog.isVisible()
    dialog.name.setText("Dr Test")
    dialog.device.setCurrentText("cpu")
    dialog.buttons.button(dialog.buttons.StandardButton.Save).click()
    assert not dialog.isVisible()
    assert load_settings(settings_file).device == "cpu"
    assert window.ctx.settings.device == "cpu"


def test_first_run_needs_a_name_and_shows_demo_failure_in_words(qtbot, tmp_path) -> None:
    import importlib.util

    from app.gui.app import application
    from app.gui.settings_dialog import FirstRunDialog
    from app.workspace import Workspace

    application()
    ws = Workspace(tmp_path / "new-ws")
    # A small demo (24 cases, no model training) keeps the test fast; the flow is the same.
    dialog = FirstRunDialog(Settings(), ws, demo_args=["--cases", "24", "--skip-models"])
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.needs_demo
    dialog.ok.click()
    assert "name" in dialog.error.text()
    dialog.name.setText("Dr New")
    if importlib.util.find_spec("app.cli.demo") is None:
        with qtbot.waitSignal(dialog.panel.finished, timeout=60000) as done:
            dialog.ok.click()
        assert done.args[1].startswith("failed")
        assert "not available yet" in dialog.error.text()
        assert dialog.isVisible() and dialog.ok.isEnabled()
    else:
        with qtbot.waitSignal(dialog.accepted, timeout=120000):
            dialog.ok.click()
        assert ws.exists()
        assert dialog.panel.state == "done"  # a fresh demo workspace: nothing left out
        assert dialog.result_settings.reviewer_name == "Dr New"


def test_settings_registers_a_model_version_or_says_why_not(qtbot, window, tmp_path) -> None:
    """A model that is not on this machine is refused in words; one in a folder becomes a
    version the compare view offers."""
    from core.demo.clip import build_demo_clip
    from core.demo.lm import build_demo_causal_lm

    dialog = window.open_settings()
    dialog.vlm.setText("google/medgemma-4b-it")
    dialog.version_name.setText("medgemma")
    with qtbot.waitSignal(dialog.panel.finished, timeout=60000):
        dialog.add_buttons["vlm"].click()
    assert "not available on this machine" in dialog.error.text()
    assert "hf download google/medgemma-4b-it" in dialog.error.text()

    clip = build_demo_clip(tmp_path / "my-clip")
    lm = build_demo_causal_lm(tmp_path / "my-lm")
    dialog.clip.setText(str(clip))
    dialog.llm.setText(str(lm))
    dialog.version_name.setText("local-pair")
    with qtbot.waitSignal(dialog.versionAdded, timeout=60000) as added:
        dialog.add_buttons["clip-llm"].click()
    assert added.args == ["local-pair"]
    assert "registered" in dialog.error.text()
    assert "local-pair" in [v.name for v in window.ctx.reader.model_versions()]
    dialog.reject()
