"""The workspace folder: any folder name works, including URL characters."""

from __future__ import annotations

from pathlib import Path

from app.cli.main import main
from app.workspace import Workspace
from feedback_db import open_store


def test_folder_names_with_url_characters_keep_the_database_inside(tmp_path: Path) -> None:
    root = tmp_path / "ward #2? 50% done"
    ws = Workspace(root)
    assert main(["demo", "create", "--workspace", str(root), "--cases", "8", "--skip-models"]) == 0
    assert ws.db_path.is_file()
    assert [p.name for p in tmp_path.iterdir()] == [root.name]  # no database made elsewhere
    with open_store(ws.db_url) as store:
        assert len(store.query_case_ids(order="id")) == 8


def test_workspace_json_names_another_database(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.settings_path.write_text('{"db_url": "postgresql+psycopg://u@h/db"}')
    assert ws.db_url == "postgresql+psycopg://u@h/db"


def test_review_pair_is_written_atomically_keeping_the_files_mode(tmp_path: Path) -> None:
    """workspace.json may hold a database password: a private file stays private."""
    import os
    import stat

    ws = Workspace(tmp_path / "ws")
    old = os.umask(0o022)
    try:
        ws.set_review_pair(("demo-v1", "demo-v2"))
        assert stat.S_IMODE(ws.settings_path.stat().st_mode) == 0o644  # as open() makes it
        ws.settings_path.chmod(0o600)
        ws.set_review_pair(("demo-v2", "demo-v3"))
    finally:
        os.umask(old)
    assert ws.review_pair == ("demo-v2", "demo-v3")
    assert stat.S_IMODE(ws.settings_path.stat().st_mode) == 0o600
    assert sorted(p.name for p in ws.root.iterdir()) == ["workspace.json"]
