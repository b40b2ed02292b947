"""Compare: each version listed once, results cleared when a picker changes, a summary line in
words, a heatmap that scales, shows values on hover and saves as PNG; the training plot has
numbered axes, one per curve."""

from __future__ import annotations

import json
import math

import pytest

from app.cli.main import main
from app.qt import QImage


def _compare_doc(workspace, tmp_path) -> dict:
    out = tmp_path / "cmp.json"
    # Both versions judged every case of the fixture: nothing is left out, so exit 0 (not 1).
    assert (
        main(["compare", "v1", "v2", "--workspace", str(workspace["root"]), "--json", str(out)])
        == 0
    )
    return json.loads(out.read_text(encoding="utf-8"))


def test_versions_are_listed_once(window, workspace) -> None:
    from feedback_db import open_store

    view = window.compare_view
    names = [view.version_a.itemText(i) for i in range(view.version_a.count())]
    assert names == ["v1", "v2", "heuristic"]
    with open_store(workspace["ws"].db_url) as store:  # the demo stores the heuristic as a version
        store.add_model_version("heuristic", "heuristic", "resources/knowledge.json")
    view.reload_versions()
    names = [view.version_b.itemText(i) for i in range(view.version_b.count())]
    assert sorted(names) == ["heuristic", "v1", "v2"] and len(names) == len(set(names))


def test_result_shows_a_summary_and_is_cleared_when_a_picker_changes(
    window, workspace, tmp_path
) -> None:
    from app.gui.compare_view import summary_line

    view = window.compare_view
    doc = _compare_doc(workspace, tmp_path)
    view.show_result(doc, None)
    view.status.setText(
        summary_line(
            doc,
            [
                "medreview compare: 3 case(s) have no prediction from 'v2' and were "
                "left out: case-1, case-2, case-3"
            ],
        )
    )
    text = view.status.text()
    n = doc["b"]["n"]
    assert text.startswith(
        f"v2 vs v1 on {n} test cases: accuracy {100 * doc['b']['accuracy']:.1f}% vs "
        f"{100 * doc['a']['accuracy']:.1f}%"
    )
    assert "McNemar p = " in text and "Left out: 3 without a verdict from v2." in text
    assert "case-1" not in text, "no list of case ids in the summary"
    assert view.metrics.rowCount() > 0 and view.heatmap.has_result() and view.save_png.isEnabled()

    view.version_b.setCurrentText("heuristic")
    assert view.result is None and view.metrics.rowCount() == 0 and view.cases.rowCount() == 0
    assert not view.heatmap.has_result() and not view.save_png.isEnabled()
    assert view.status.text() == "Choose two versions and press Compare."


def test_heatmap_scales_shows_values_on_hover_and_saves_png(
    qtbot, window, workspace, tmp_path
) -> None:
    view = window.compare_view
    window.tabs.setCurrentIndex(1)
    doc = _compare_doc(workspace, tmp_path)
    view.show_result(doc, None)
    heat = view.heatmap
    heat.resize(600, 260)
    heat.repaint()
    small = heat._cells[0][0]
    heat.resize(1200, 520)
    heat.repaint()
    big = heat._cells[0][0]
    assert big.width() > 1.8 * small.width() and big.height() > small.height(), (
        "cells grow with the pane"
    )
    rect, _ = heat._cells[0]
    tip = heat.tooltip_at(rect.center().x(), rect.center().y())
    first = heat.rows[0]
    a_acc = doc["a"]["per_modality"][first]["accuracy"]
    assert tip.splitlines()[0].endswith("Accuracy (higher is better)")
    assert f"A v1: {100 * a_acc:.1f}%" in tip and "B − A" in tip
    diff_rect, diff_tip = heat._cells[2 * len(heat.rows) * 4]  # first cell of the B - A panel
    assert diff_tip == tip  # every panel's cell tells the same story
    assert heat.value("diff", first, "accuracy") == heat.value("b", first, "accuracy") - a_acc
    assert all(
        math.isfinite(heat.value("a", r, "accuracy")) for r in heat.rows if doc["a"].get("n")
    )
    png = heat.save_png(tmp_path / "heat.png")
    image = QImage(str(png))
    assert image.width() == 2 * heat.width() and image.height() == 2 * heat.height()


def test_plot_has_numbered_axes_and_a_panel_per_curve(qtbot) -> None:
    from app.gui.plot import LivePlot, nice_ticks

    assert nice_ticks(0.0, 1.0, 4) == [0.0, 0.5, 1.0]
    ticks = nice_ticks(-3.2, 7.9, 4)
    assert ticks == [-2.0, 0.0, 2.0, 4.0, 6.0], "round steps (1, 2 or 5 x 10^k) inside the range"
    assert nice_ticks(0.0012, 0.0019, 3) == pytest.approx([0.0012, 0.0014, 0.0016, 0.0018])
    plot = LivePlot()
    qtbot.addWidget(plot)
    plot.resize(600, 360)
    for step in range(30):
        plot.add(
            stage="reward" if step < 15 else "ppo",
            loss=2.0 - step * 0.05,
            reward=None if step < 15 else step * 0.1,
            kl=None if step < 15 else 0.01 * step,
        )
    assert plot.panels() == ["loss", "reward", "kl"]
    image = plot.grab().toImage()
    assert not image.isNull() and plot.point_count() == 30 + 15 + 15
    assert [name for _, name in plot.stages] == ["reward", "ppo"]
