"""``medreview db``, ``export`` and ``import`` (ratings) on a real workspace in tmp_path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.cli.main import main
from app.workspace import Workspace
from feedback_db import CaseIn, PredictionIn, RatingIn, open_store
from tests.feedback_db.factory import seed
from tests.feedback_db.old_stores import DATA


def _workspace(tmp_path: Path, name: str = "ws", rate: bool = True) -> Workspace:
    ws = Workspace(tmp_path / name).ensure()
    store = open_store(ws.db_url)
    s = seed(store, ws.root)
    if rate:
        for cid, pref in (("c-mri-1", "b"), ("c-hist-1", "b"), ("c-xray-1", "a")):
            a, b = s.preds[cid]
            store.add_rating(
                RatingIn(
                    cid, s.reviewer.id, a.id, b.id, pref, "ERROR" if pref == "b" else "CORRECT"
                )
            )
    store.close()
    return ws


def test_db_info_and_upgrade(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    assert main(["db", "info", "--workspace", str(ws.root)]) == 2
    assert "no database" in capsys.readouterr().err
    shutil.copy(DATA / "store_0001.db", ws.db_path)
    assert main(["db", "info", "--workspace", str(ws.root), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["revision"] == "0001" and not info["up_to_date"] and info["counts"]["ratings"] == 2
    assert main(["db", "upgrade", "--workspace", str(ws.root)]) == 0
    out = capsys.readouterr().out
    from feedback_db.migrate import head_revision

    assert f"upgraded schema 0001 -> {head_revision()}" in out and "backup" in out
    assert len(list(ws.root.glob("medreview.db.bak-0001-*"))) == 1
    assert main(["db", "upgrade", "--workspace", str(ws.root)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["db", "info", "--workspace", str(ws.root)]) == 0
    out = capsys.readouterr().out
    assert "up to date" in out and "ratings" in out


def test_export_then_import_on_another_workstation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = _workspace(tmp_path)
    out = tmp_path / "share" / "expert_feedback.jsonl"
    assert main(["export", str(out), "--workspace", str(ws.root), "--progress", "none"]) == 0
    assert "wrote 3 pairs from 3 ratings" in capsys.readouterr().out
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["case_id"] for x in lines] == ["c-mri-1", "c-hist-1", "c-xray-1"]
    assert all((out.parent / x["images"][0]).is_file() for x in lines)

    other = _workspace(tmp_path, "ws-b", rate=False)
    assert main(["import", str(out), "--workspace", str(other.root), "--progress", "none"]) == 0
    assert "imported 3 ratings" in capsys.readouterr().out
    assert main(["import", str(out), "--workspace", str(other.root), "--progress", "none"]) == 0
    assert (
        "imported 0 ratings from" in (again := capsys.readouterr().out)
        and "3 already there" in again
    )

    kto = tmp_path / "share" / "kto.jsonl"
    assert (
        main(
            [
                "export",
                str(kto),
                "--format",
                "kto",
                "--reviewer",
                "dr-lee",
                "--workspace",
                str(ws.root),
            ]
        )
        == 0
    )
    assert all(isinstance(json.loads(x)["label"], bool) for x in kto.read_text().splitlines())


def test_import_reports_bad_lines_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = _workspace(tmp_path)
    out = tmp_path / "share" / "expert_feedback.jsonl"
    assert main(["export", str(out), "--workspace", str(ws.root)]) == 0
    good = out.read_text().splitlines()
    mixed = out.with_name("mixed.jsonl")
    mixed.write_text(
        good[0]
        + '\n{"chosen": \n'
        + json.dumps({**json.loads(good[1]), "case_id": "c-nope"})
        + "\n"
    )
    other = _workspace(tmp_path, "ws-b", rate=False)
    capsys.readouterr()
    assert main(["import", str(mixed), "--workspace", str(other.root)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{mixed}:2: invalid JSON (Expecting value at column 12)"]
    # A case the workspace lacks is created from its line (modality, finding, treatment, image).
    from feedback_db import open_store

    with open_store(other.db_url) as store:
        assert store.get_case("c-nope") is not None
    all_bad = out.with_name("bad.jsonl")
    all_bad.write_text(json.dumps({**json.loads(good[0]), "reviewer": "dr-x"}) + "\n")
    assert main(["import", str(all_bad), "--workspace", str(other.root)]) == 2
    assert main(["import", str(all_bad), "--workspace", str(other.root), "--create-reviewers"]) == 0


def test_export_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tmp_path / "x.jsonl"), "--workspace", str(tmp_path / "none")]) == 2
    assert "no workspace" in capsys.readouterr().err
    ws = _workspace(tmp_path)
    assert main(["export", str(tmp_path / "x.txt"), "--workspace", str(ws.root)]) == 2
    assert (
        main(
            [
                "export",
                str(tmp_path / "x.jsonl"),
                "--reviewer",
                "nobody",
                "--workspace",
                str(ws.root),
            ]
        )
        == 2
    )
    assert "unknown reviewer 'nobody'" in capsys.readouterr().err
    (ws.root / "images" / "c-hist-1.png").unlink()
    assert main(["export", str(tmp_path / "x.jsonl"), "--workspace", str(ws.root)]) == 1
    assert "left out: case c-hist-1" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "missing.jsonl"), "--workspace", str(ws.root)]) == 2


def test_export_converts_dicom_without_its_tags(tmp_path: Path) -> None:
    """The CLI passes core's DICOM renderer to the export: pixels only, no tags."""
    import numpy as np
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN-0042"
    ds.Rows, ds.Columns = 4, 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation, ds.SamplesPerPixel = 0, 1
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.PixelData = np.arange(16, dtype=np.uint16).reshape(4, 4).tobytes()
    ws = _workspace(tmp_path, rate=False)
    ds.save_as(ws.root / "images" / "scan.dcm", enforce_file_format=True)
    store = open_store(ws.db_url)
    store.add_cases([CaseIn("c-dcm", "xray", "images/scan.dcm", "Fracture", "Cast")])
    store.add_predictions("base", [PredictionIn("c-dcm", "CORRECT", "fits", "CORRECT - fits", 0.6)])
    store.add_predictions("v2", [PredictionIn("c-dcm", "ERROR", "no", "ERROR - no", 0.6)])
    a, b = store.predictions_for_case("c-dcm")
    reviewer = store.ensure_reviewer("dr-lee", "radiologist")
    store.add_rating(RatingIn("c-dcm", reviewer.id, a.id, b.id, "a", "CORRECT"))
    store.close()
    out = tmp_path / "share" / "expert_feedback.jsonl"
    assert main(["export", str(out), "--workspace", str(ws.root)]) == 0
    [line] = [json.loads(x) for x in out.read_text().splitlines()]
    data = (out.parent / line["images"][0]).read_bytes()
    assert line["images"][0].endswith(".png") and data.startswith(b"\x89PNG")
    assert b"Doe" not in data and b"MRN-0042" not in data
    from io import BytesIO

    from PIL import Image

    img = Image.open(BytesIO(data))
    assert img.getpixel((0, 0)) > img.getpixel((3, 3))  # MONOCHROME1: low values shown bright
