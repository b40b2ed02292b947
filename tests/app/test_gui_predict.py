""" "Run model on these cases": imported cases have no verdicts and cannot be rated; the end of an
import offers to run the review pair on them, and ``medreview predict --missing`` (a real child
process, a real model) fills them in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from app.cli.main import main
from feedback_db import open_store

ROOT = Path(__file__).resolve().parents[2]

SETUP = """
import sys
from app.cli.main import main
from core.demo.clip import build_demo_clip
from core.demo.lm import build_demo_causal_lm
ws, tmp = sys.argv[1], sys.argv[2]
clip = build_demo_clip(tmp + "/clip")
lm = build_demo_causal_lm(tmp + "/lm")
sys.exit(main(["models", "add", "tiny", "--backend", "clip-llm", "--clip", str(clip), "--lm", str(lm),
               "--workspace", ws]))
"""


def _runnable_pair(workspace, tmp_path: Path) -> None:
    """The review pair becomes two versions that can run here: the built-in heuristic (active)
    and a tiny clip-llm model registered from folders (untrained: its verdicts are whatever it
    writes, which is all this test needs)."""
    root = str(workspace["root"])
    assert main(["predict", "--version", "heuristic", "--split", "all", "--workspace", root]) == 0
    proc = subprocess.run(
        [sys.executable, "-c", SETUP, root, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"HF_HUB_OFFLINE": "1", **__import__("os").environ},
    )
    assert proc.returncode == 0, proc.stderr
    with open_store(workspace["ws"].db_url) as store:
        store.set_active("heuristic")


def _manifest(tmp_path: Path) -> Path:
    from PIL import Image

    folder = tmp_path / "incoming"
    folder.mkdir()
    Image.new("L", (64, 48), 120).save(folder / "new.png")
    manifest = folder / "cases.csv"
    manifest.write_text(
        "modality,image,finding,treatment,split\n"
        "xray,new.png,Lobar consolidation (pneumonia),Oral antibiotics,test\n",
        encoding="utf-8",
    )
    return manifest


def test_predicting_from_the_gui_fills_in_the_verdicts_of_imported_cases(
    qtbot, workspace, settings_file, tmp_path
) -> None:
    from app.gui.app import build_window
    from app.settings import load_settings

    _runnable_pair(workspace, tmp_path)
    win = build_window(workspace["ws"], load_settings(settings_file), settings_file)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.first_case_shown, timeout=10000)
    assert set(win.review.versions) == {"heuristic", "tiny"}
    before = set(win.review.ids)

    dialog = win.open_import()
    dialog.path.setText(str(_manifest(tmp_path)))
    with qtbot.waitSignal(dialog.completed, timeout=60000) as done:
        dialog.run_button.click()
    assert done.args[0] == "done", dialog.panel.log.toPlainText()
    assert dialog.run_model.isVisible(), "the end of the import offers to run the models"
    (new_id,) = set(win.review.ids) - before
    win.open_case(new_id)
    assert not win.review.shown.can_rate, "an imported case has no verdicts yet"

    dialog.run_model.click()
    predict = win.dialogs["predict"]
    assert predict.isVisible()
    assert (
        "heuristic on 1 case" in predict.intro.text() and "tiny on 21 cases" in predict.intro.text()
    )
    runs = predict.runs()
    assert [r[:3] for r in runs] == [
        ["predict", "--version", "heuristic"],
        ["predict", "--version", "tiny"],
    ]
    assert all("--missing" in r for r in runs)
    with qtbot.waitSignal(predict.completed, timeout=300000) as finished:
        assert predict.run()
        assert predict.running and predict.cancel_button.isEnabled()
    assert finished.args[0] == "done", predict.panel.log.toPlainText()
    assert "Nothing to run" in predict.intro.text()

    with open_store(workspace["ws"].db_url) as store:
        versions = {p.version for p in store.predictions_for_case(new_id)}
    assert {"heuristic", "tiny"} <= versions
    # The window reloaded: the imported case on screen can now be rated.
    assert win.review.shown.case.case_id == new_id and win.review.shown.can_rate
    assert {win.review.shown.a.version, win.review.shown.b.version} == {"heuristic", "tiny"}
    win.close()


def test_predict_missing_skips_cases_that_have_a_verdict(workspace, capsys) -> None:
    root = str(workspace["root"])
    missing = [
        "predict",
        "--version",
        "heuristic",
        "--split",
        "all",
        "--missing",
        "--workspace",
        root,
    ]
    assert main(["predict", "--version", "heuristic", "--split", "test", "--workspace", root]) == 0
    with open_store(workspace["ws"].db_url) as store:
        first = store.predictions_for_version("heuristic")
    assert main(missing) == 0
    with open_store(workspace["ws"].db_url) as store:
        after = store.predictions_for_version("heuristic")
    assert len(after) == workspace["n"]
    assert all(after[cid].id == p.id for cid, p in first.items()), (
        "existing verdicts are not redone"
    )
    capsys.readouterr()
    assert main(missing) == 0
    assert "every case already has a verdict from heuristic" in capsys.readouterr().err
