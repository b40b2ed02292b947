"""``medreview import`` of a case manifest: routed to core.manifest, good rows stored, bad rows on
stderr as file:line: message. The manifest reader itself is core's (tests/core)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from app.cli.main import main
from app.workspace import Workspace
from feedback_db import open_store
from tests.feedback_db.factory import png_bytes


def _manifest(tmp_path: Path) -> Path:
    src = tmp_path / "incoming"
    src.mkdir()
    (src / "a.png").write_bytes(png_bytes(10))
    (src / "b.png").write_bytes(png_bytes(20))
    manifest = src / "cases.csv"
    manifest.write_text(
        "case_id,modality,image,finding,treatment,error_type,severity,split\n"
        "m-1,xray,a.png,Pneumonia,Antibiotics,none,,train\n"
        "m-2,mri,b.png,Glioblastoma,Aspirin,treatment_mismatch,critical,test\n"
        "m-3,dermoscopy,a.png,Naevus,Excision,none,,test\n",
        encoding="utf-8",
    )
    return manifest


def test_without_core_manifest_the_verb_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "core.manifest", None)  # import raises ImportError
    ws = tmp_path / "ws"
    assert main(["import", str(_manifest(tmp_path)), "--workspace", str(ws)]) == 2
    assert "case manifests cannot be read" in capsys.readouterr().err


def test_manifest_rows_become_cases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("core.manifest")
    ws = Workspace(tmp_path / "ws")
    manifest = _manifest(tmp_path)
    assert main(["import", str(manifest), "--workspace", str(ws.root), "--progress", "none"]) == 1
    captured = capsys.readouterr()
    assert "cases.csv:4:" in captured.err and "imported 2 cases" in captured.out
    store = open_store(ws.db_url)
    try:
        cases = store.get_cases(store.query_case_ids(order="id"))
        assert len(cases) == 2
        for c in cases:
            assert c.image.startswith("images/") and (ws.root / c.image).is_file()
    finally:
        store.close()
    # Importing again: the same ids are refused as a whole, or skipped when asked.
    assert main(["import", str(manifest), "--workspace", str(ws.root)]) == 2
    assert main(["import", str(manifest), "--workspace", str(ws.root), "--skip-existing"]) == 1
