"""``medreview import`` of a case manifest: routed to core.manifests.manifest, good rows stored, bad rows on
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


def test_without_core_manifest_the_verb_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "core.manifests.reader", None)  # import raises ImportError
    ws = tmp_path / "ws"
    assert main(["import", str(_manifest(tmp_path)), "--workspace", str(ws)]) == 2
    assert "case manifests cannot be read" in capsys.readouterr().err


def test_manifest_rows_become_cases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("core.manifests.reader")
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


def test_a_folder_with_a_sidecar_imports_and_copies_only_what_it_imports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 9: a folder import ended in a traceback after copying the images in."""
    src = tmp_path / "scans"
    for sub, shade in (("xray", 10), ("mri", 20), ("unsorted", 30)):
        (src / sub).mkdir(parents=True)
        (src / sub / f"{sub}.png").write_bytes(png_bytes(shade))
    (src / "cases.csv").write_text(
        "image,finding,treatment,reader\n"
        "xray/xray.png,Pneumonia,Antibiotics,dr-a\n"
        "mri/mri.png,Glioblastoma,Neurosurgical referral,dr-b\n"
    )
    ws = Workspace(tmp_path / "ws")
    rc = main(["import", str(src), "--workspace", str(ws.root), "--progress", "none"])
    captured = capsys.readouterr()
    assert rc == 1 and "imported 2 cases" in captured.out and "Traceback" not in captured.err
    assert (
        "unsorted.png: not imported: add a row for unsorted/unsorted.png in cases.csv"
        in captured.err
    )
    assert "note: " in captured.err and "'reader'" in captured.err
    with open_store(ws.db_url) as store:
        cases = store.get_cases(store.query_case_ids(order="id"))
        assert sorted(c.modality for c in cases) == ["mri", "xray"]
        assert {c.meta["reader"] for c in cases} == {"dr-a", "dr-b"}
    assert sorted(p.name for p in ws.images_dir.iterdir()) == sorted(
        Path(c.image).name for c in cases
    )


def test_rows_refused_by_the_store_leave_no_image_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = Workspace(tmp_path / "ws")
    manifest = _manifest(tmp_path)
    assert main(["import", str(manifest), "--workspace", str(ws.root)]) == 1
    before = sorted(ws.images_dir.iterdir())
    (manifest.parent / "c.png").write_bytes(png_bytes(99))
    manifest.write_text(
        "case_id,modality,image,finding,treatment\nm-1,xray,c.png,Pneumonia,Antibiotics\n"
    )
    assert main(["import", str(manifest), "--workspace", str(ws.root)]) == 2  # m-1 is taken
    assert "already in the workspace" in capsys.readouterr().err
    assert sorted(ws.images_dir.iterdir()) == before  # c.png was not left in the workspace


def test_burned_in_dicom_is_refused_unless_allowed_then_flagged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pydicom
    from pydicom.data import get_testdata_file

    src = tmp_path / "in"
    src.mkdir()
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    ds.BurnedInAnnotation = "YES"
    ds.save_as(src / "us.dcm")
    (src / "m.csv").write_text(
        "modality,image,finding,treatment\nus,us.dcm,Simple cyst,Surveillance\n"
    )
    ws = Workspace(tmp_path / "ws")
    assert main(["import", str(src / "m.csv"), "--workspace", str(ws.root)]) == 2
    assert "burned into its pixels" in capsys.readouterr().err
    assert (
        main(["import", str(src / "m.csv"), "--workspace", str(ws.root), "--allow-burned-in"]) == 0
    )
    assert "1 case(s) declare text burned into the pixels" in capsys.readouterr().err
    with open_store(ws.db_url) as store:
        (case,) = store.get_cases(store.query_case_ids(order="id"))
        assert (
            case.burned_in and case.burned_in_cleared_by is None and case.meta["burned_in"] is True
        )


def test_hostile_manifests_end_in_words_not_tracebacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = tmp_path / "ws"
    deep = tmp_path / "deep.jsonl"
    deep.write_text("[" * 100_000 + "\n")
    assert main(["import", str(deep), "--workspace", str(ws)]) == 2
    err = capsys.readouterr().err
    assert "deep.jsonl:1: JSON nested deeper than 64 levels" in err and "Traceback" not in err
    evil = tmp_path / "evil.csv"
    evil.write_text(
        "modality,image,finding,treatment\nxray,/etc/shadow,x,y\nxray,/etc/nonexistent,x,y\n"
    )
    assert main(["import", str(evil), "--workspace", str(ws), "--max-megapixels", "1"]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "evil.csv:" in ln]
    assert len(lines) == 2 and all("outside the images root" in ln for ln in lines)
    same = [ln.split(":", 2)[2].replace("shadow", "X").replace("nonexistent", "X") for ln in lines]
    assert same[0] == same[1]  # the same words whether the file exists or not
