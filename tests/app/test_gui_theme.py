"""Themes and text size: the dark reading-room theme is the default, both themes hold text to
WCAG's 4.5:1, the choice and the text size are set in Settings and remembered, and the text
size really changes the text."""

from __future__ import annotations

import json

import pytest

from app.gui import theme
from app.settings import SETTINGS_VERSION, Settings, SettingsError, load_settings


@pytest.mark.parametrize("name", ["dark", "light"])
def test_every_text_colour_has_enough_contrast(name) -> None:
    report = theme.contrast_report(name)
    assert len(report) > 20, "the check reads the sheet's rules"
    low = [(sel, fg, bg, round(r, 2)) for sel, fg, bg, r in report if r < 4.5]
    assert low == []


@pytest.mark.parametrize("name", ["dark", "light"])
def test_painted_colours_have_contrast(name) -> None:
    c = theme.PALETTES[name]
    for key in ("text", "muted"):
        for surface in ("window", "panel", "plot_bg"):
            assert theme.contrast_ratio(c[key], c[surface]) >= 4.5, (key, surface)
    for key in ("loss", "reward", "kl", "rated", "to_rate", "accent"):  # lines and status words
        assert theme.contrast_ratio(c[key], c["plot_bg"]) >= 3.0, key
        assert theme.contrast_ratio(c[key], c["panel"]) >= 3.0, key
    assert theme.contrast_ratio(theme.VIEWER_TEXT, theme.VIEWER_BG) >= 7


def test_contrast_ratio_is_wcag() -> None:
    assert theme.contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert theme.contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


def test_dark_is_the_default_and_old_files_keep_light(tmp_path) -> None:
    assert Settings().theme == "dark" and Settings().font_scale == 1.0
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"version": 2, "reviewer_name": "Dr Old", "queue_order": "id"}))
    s = load_settings(path)
    assert (s.version, s.theme, s.font_scale, s.queue_order) == (
        SETTINGS_VERSION,
        "light",
        1.0,
        "id",
    )
    for bad in ({"theme": "purple"}, {"font_scale": 5.0}, {"font_scale": "big"}):
        with pytest.raises(SettingsError, match=next(iter(bad))):
            Settings().updated(**bad)


def test_font_scale_scales_every_size_in_the_sheet() -> None:
    sheet = theme.style_sheet("dark", 1.5)
    assert "font-size: 20px" in sheet  # 13 px body text
    assert "font-size: 13px" not in sheet
    assert theme.scale_fonts("a { font-size: 12px; }", 0.5) == "a { font-size: 8px; }"


def test_theme_and_text_size_from_settings_are_applied_and_remembered(
    qtbot, window, settings_file
) -> None:
    from app.qt import QApplication, QColor

    app = QApplication.instance()
    assert app.property("medreviewLook") == "dark@1.0"
    dark_bg = app.palette().color(app.palette().ColorRole.Window)
    assert dark_bg == QColor(theme.PALETTES["dark"]["window"])
    before = window.review_view.case_panel.finding.fontInfo().pixelSize()

    dialog = window.open_settings()
    assert dialog.theme.currentData() == "dark"
    dialog.theme.setCurrentIndex(dialog.theme.findData("light"))
    dialog.font_scale.setCurrentIndex(dialog.font_scale.findData(1.3))
    dialog.buttons.button(dialog.buttons.StandardButton.Save).click()
    saved = load_settings(settings_file)
    assert (saved.theme, saved.font_scale) == ("light", 1.3)
    assert app.property("medreviewLook") == "light@1.3"
    assert theme.active().name == "light"
    qtbot.wait(20)
    after = window.review_view.case_panel.finding.fontInfo().pixelSize()
    assert after >= before * 1.25, (before, after)
    assert window.actions_by_name["theme"].isChecked() is False

    window.actions_by_name["smaller"].trigger()
    assert load_settings(settings_file).font_scale == 1.15
    window.actions_by_name["theme"].trigger()  # back to the reading room
    assert load_settings(settings_file).theme == "dark"
    window.ctx.settings = window.ctx.settings.updated(font_scale=1.0)
    window.apply_look(window.ctx.settings)


def test_first_run_offers_the_dark_theme(qtbot, tmp_path) -> None:
    from app.gui.app import application
    from app.gui.settings_dialog import FirstRunDialog
    from app.workspace import Workspace

    application()
    dialog = FirstRunDialog(Settings(), Workspace(tmp_path / "new"))
    qtbot.addWidget(dialog)
    assert dialog.theme.currentData() == "dark"
    assert "Dark (reading room)" in dialog.theme.currentText()
