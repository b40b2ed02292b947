"""Every verb on hostile input: an answer in words, an exit code, and never a Python traceback.

The sweep runs ``medreview`` in-process (``app.cli.main.main``) on workspaces that are broken in
the ways users' machines break them, and fails on any traceback, any exception that escapes, and
any message that is not one line naming what is wrong.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from app.cli.main import main

# (verb arguments) that each must answer in words on a broken workspace; {out} is a free path.
VERBS: tuple[tuple[str, ...], ...] = (
    ("db", "info"),
    ("db", "upgrade"),
    ("export", "{out}"),
    ("models", "list"),
    ("predict", "--version", "v1"),
    ("evaluate", "--version", "v1"),
    ("compare", "v1", "v2"),
    ("train", "retrain", "--steps", "1"),
    ("import", "{manifest}"),
)


def _broken_workspaces(tmp: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    file_ws = tmp / "a-file"
    file_ws.write_text("not a folder")
    out["workspace is a file"] = file_ws
    bad_json = tmp / "bad-json"
    bad_json.mkdir()
    (bad_json / "workspace.json").write_text('{"db_url": ')
    out["broken workspace.json"] = bad_json
    deep_json = tmp / "deep-json"
    deep_json.mkdir()
    (deep_json / "workspace.json").write_text("[" * 200_000)
    out["200,000-deep workspace.json"] = deep_json
    empty_db = tmp / "empty-db"
    empty_db.mkdir()
    (empty_db / "medreview.db").write_bytes(b"")
    out["zero-byte database"] = empty_db
    foreign = tmp / "foreign-db"
    foreign.mkdir()
    con = sqlite3.connect(foreign / "medreview.db")
    con.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    con.commit()
    con.close()
    out["foreign database"] = foreign
    garbage = tmp / "garbage-db"
    garbage.mkdir()
    (garbage / "medreview.db").write_bytes(b"this is not a database at all\x00" * 100)
    out["not a database"] = garbage
    return out


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse usage errors exit 2 with a usage line, never a traceback
        rc = int(exc.code or 0)
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("hostile")
    deep = tmp / "deep.jsonl"
    deep.write_text("[" * 200_000 + "\n")
    ratings = tmp / "ratings" / "expert_feedback.jsonl"
    ratings.parent.mkdir()
    ratings.write_text(
        json.dumps(
            {
                "prompt": "x",
                "chosen": "ERROR - a",
                "rejected": "CORRECT - b",
                "case_id": "c1",
                "reviewer": "r",
                "rated_at": "2026-01-01T00:00:00Z",
                "images": ["../../etc/passwd"],
            }
        )
        + "\n"
        + "[" * 200_000
        + "\n"
    )
    return {"deep manifest": deep, "hostile ratings": ratings}


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: " ".join(v[:2]))
def test_every_verb_answers_broken_workspaces_in_words(
    verb: tuple[str, ...],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    hostile_files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MEDREVIEW_LOG_DIR", str(tmp_path / "logs"))
    for what, ws in _broken_workspaces(tmp_path).items():
        argv = [
            a.format(out=tmp_path / "out" / "f.jsonl", manifest=hostile_files["deep manifest"])
            for a in verb
        ]
        rc, text = _run(capsys, [*argv, "--workspace", str(ws)])
        assert "Traceback" not in text, f"{what}: {' '.join(verb)} printed a traceback:\n{text}"
        assert "sqlalche.me" not in text and "[SQL:" not in text, (
            f"{what}: library text leaked:\n{text}"
        )
        lines = [line for line in text.splitlines() if line.strip()]
        assert lines, f"{what}: {' '.join(verb)} said nothing"
        assert all(len(line) < 600 for line in lines), f"{what}: not one sentence: {text!r}"
        if what == "zero-byte database":
            # SQLite reads an empty file as an empty database: a new store, not an error.
            assert rc in (0, 1, 2)
            continue
        assert rc in (1, 2), f"{what}: {' '.join(verb)} exited {rc}:\n{text}"
        if verb[0] != "import":  # import lists the rejected rows, then its summary
            assert lines[-1].startswith("medreview "), f"{what}: {lines[-1]!r}"


@pytest.mark.parametrize("name", ["deep manifest", "hostile ratings"])
def test_hostile_files_are_refused_in_words(
    name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    hostile_files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MEDREVIEW_LOG_DIR", str(tmp_path / "logs"))
    rc, text = _run(
        capsys,
        [
            "import",
            str(hostile_files[name]),
            "--workspace",
            str(tmp_path / "ws"),
            "--create-reviewers",
        ],
    )
    assert "Traceback" not in text and "RecursionError" not in text, text
    assert rc in (1, 2)
    assert str(hostile_files[name].name) in text  # the message names the file (and line)
    assert "passwd" not in text or "outside" in text or "inside" in text


def test_an_unexpected_error_is_one_sentence_with_a_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error no check foresaw: one line naming the log file, which holds the traceback."""
    import app.cli.db as db

    def boom(_args: object) -> int:
        raise RuntimeError("the disk controller said no")

    monkeypatch.setattr(db, "run_info", boom)
    monkeypatch.setenv("MEDREVIEW_LOG_DIR", str(tmp_path / "logs"))
    parser_rc, text = _run(capsys, ["db", "info", "--workspace", str(tmp_path / "ws")])
    assert parser_rc == 2 and "Traceback" not in text
    log = tmp_path / "logs" / "medreview.log"
    assert text.strip() == f"medreview db: the disk controller said no (details in {log})"
    assert "Traceback" in log.read_text() and "RuntimeError" in log.read_text()


def test_a_read_only_workspace_opens_read_only(
    workspace: dict,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """db info and export to elsewhere work; writing verbs are refused in words; nothing changes.
    (``MEDREVIEW_READ_ONLY=1`` stands for a read-only disk: the tests run as root, who can write
    anywhere.)"""
    import hashlib

    root = workspace["root"]
    db = root / "medreview.db"
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    monkeypatch.setenv("MEDREVIEW_READ_ONLY", "1")
    monkeypatch.setenv("MEDREVIEW_LOG_DIR", str(tmp_path / "logs"))
    rc, text = _run(capsys, ["db", "info", "--workspace", str(root)])
    assert rc == 0 and "schema:" in text
    rc, text = _run(
        capsys, ["export", str(tmp_path / "elsewhere" / "f.jsonl"), "--workspace", str(root)]
    )
    assert rc == 0, text
    for argv in (
        ["import", str(tmp_path / "elsewhere" / "f.jsonl")],
        ["train", "retrain"],
        ["db", "upgrade"],
        ["predict", "--version", "v1"],
        ["models", "activate", "v1"],
    ):
        rc, text = _run(capsys, [*argv, "--workspace", str(root)])
        assert rc == 2 and "is read-only" in text and "Traceback" not in text, (argv, text)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_the_window_on_a_read_only_workspace_reviews_without_saving(
    qtbot, workspace: dict, settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.gui.app import build_window
    from app.settings import load_settings

    monkeypatch.setenv("MEDREVIEW_READ_ONLY", "1")
    win = build_window(workspace["ws"], load_settings(settings_file), settings_file)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.first_case_shown, timeout=10000)
    try:
        assert "read-only" in win.windowTitle()
        assert "ratings are not saved" in win.review_view.rating.state.text()
        assert not win.review_view.rating.save_button.isEnabled()
        shown = win.review.shown
        assert not win.review.save("both_wrong", "ERROR", None, None)
        assert win.review.pending == {} and win.review.shown.case.case_id == shown.case.case_id
    finally:
        win.close()
