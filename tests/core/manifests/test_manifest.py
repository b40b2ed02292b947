from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from core.manifests.manifest import RowError
from core.manifests.reader import read_manifest
from core.runtime.progress import Canceled, Progress

HEADER = [
    "case_id",
    "modality",
    "image",
    "finding",
    "treatment",
    "error_type",
    "severity",
    "cost_impact",
    "split",
]


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """A folder with a few images, as a clinician's export would have them."""
    d = tmp_path / "src"
    (d / "imgs").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(d / "imgs" / "a.png")
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(d / "imgs" / "b.png")
    (d / "imgs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return d


def _row(**kw: str) -> dict[str, str]:
    base = {
        "case_id": "",
        "modality": "xray",
        "image": "imgs/a.png",
        "finding": "Pneumothorax",
        "treatment": "Chest tube insertion",
        "error_type": "none",
        "severity": "",
        "cost_impact": "",
        "split": "test",
    }
    base.update(kw)
    return base


def _write_csv(
    path: Path, rows: list[dict[str, str]], header: list[str] = HEADER, newline: str = "\n"
) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, lineterminator=newline, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8", newline="")
    return path


def test_good_csv_imports_and_copies_by_hash(src: Path, tmp_path: Path) -> None:
    images = tmp_path / "ws" / "images"
    rows = [
        _row(case_id="c1"),
        _row(image="imgs/a.png", modality="X-Ray"),
        _row(
            image=str(src / "imgs" / "b.png"),
            modality="histology",
            finding="Benign tissue with normal nuclei",
            treatment="Routine surveillance",
        ),
    ]
    res = read_manifest(_write_csv(src / "m.csv", rows), images)
    assert res.errors == [] and res.ok and len(res.cases) == 3
    a = res.cases[0]
    digest = hashlib.sha256((src / "imgs" / "a.png").read_bytes()).hexdigest()
    assert a.case_id == "c1" and a.image == f"images/{digest}.png" and a.modality == "xray"
    assert (images / f"{digest}.png").read_bytes() == (src / "imgs" / "a.png").read_bytes()
    assert res.cases[1].modality == "xray" and res.cases[1].case_id.startswith("case-")
    assert res.cases[1].image == a.image  # the same bytes are stored once
    assert len(list(images.iterdir())) == 2
    assert res.cases[2].modality == "histopathology" and res.cases[2].split == "test"
    assert a.error_type == "none" and a.severity is None and a.cost_impact == 0.0


def test_each_kind_of_bad_row_is_reported_and_good_rows_import(src: Path, tmp_path: Path) -> None:
    rows = [
        _row(case_id="good1"),  # line 2
        _row(image="imgs/missing.png"),  # 3
        _row(image="imgs/broken.png"),  # 4
        _row(modality="ct"),  # 5
        _row(severity="catastrophic", error_type="treatment_mismatch"),  # 6
        _row(cost_impact="lots", error_type="treatment_mismatch"),  # 7
        _row(error_type="wrong_kind"),  # 8
        _row(finding=""),  # 9
        _row(case_id="good1"),  # 10: duplicate id
        _row(case_id="good2", split="validation"),  # 11
        _row(case_id="good3"),  # 12
    ]
    path = _write_csv(src / "m.csv", rows)
    text = path.read_text().splitlines()
    text.insert(11, "")  # an empty line becomes line 12; good3 moves to 13
    text.insert(5, "xray,imgs/a.png")  # too few fields: line 6
    path.write_text("\n".join(text) + "\n")
    res = read_manifest(path, tmp_path / "images")
    assert [c.case_id for c in res.cases] == ["good1", "good3"]
    by_line = {e.line: e.message for e in res.errors}
    assert all(e.file == str(path) for e in res.errors)
    assert "image file not found: imgs/missing.png" in by_line[3]
    assert "unreadable image imgs/broken.png" in by_line[4]
    assert "unknown modality 'ct'" in by_line[5]
    assert "expected 9 fields, found 2" in by_line[6]
    assert "severity 'catastrophic'" in by_line[7]
    assert "cost_impact must be a number" in by_line[8]
    assert "error_type 'wrong_kind'" in by_line[9]
    assert "empty 'finding'" in by_line[10]
    assert "duplicate case_id 'good1' (first on line 2)" in by_line[11]
    assert "split 'validation'" in by_line[12]
    assert by_line[13] == "empty line"
    assert str(res.errors[0]) == f"{path}:3: image file not found: imgs/missing.png"
    assert len(res.errors) == 11


def test_missing_column_refuses_and_extra_column_is_kept_in_meta(src: Path, tmp_path: Path) -> None:
    missing = _write_csv(
        src / "missing.csv", [_row()], header=[h for h in HEADER if h != "treatment"]
    )
    res = read_manifest(missing, tmp_path / "images")
    assert res.cases == [] and res.errors == [
        RowError(str(missing), 1, "missing column 'treatment'; no rows were imported")
    ]
    extra = src / "extra.csv"
    extra.write_text(
        ",".join([*HEADER, "notes"])
        + "\n"
        + ",xray,imgs/a.png,Pneumothorax,Chest tube insertion,none,,,train,hi\n"
    )
    res = read_manifest(extra, tmp_path / "images")
    # Not a reason to refuse the file (issue 9): kept in the case's meta, reported once as a note.
    assert res.errors == [] and len(res.cases) == 1
    assert res.cases[0].meta["notes"] == "hi" and res.cases[0].finding == "Pneumothorax"
    assert res.notes == [f"{extra}: 'notes' is not a case field; kept in each case's meta"]


def test_bom_crlf_and_optional_columns(src: Path, tmp_path: Path) -> None:
    header = ["modality", "image", "finding", "treatment"]
    path = _write_csv(
        src / "m.csv",
        [_row(), _row(modality="MR", finding="Intracranial mass", treatment="Lobectomy")],
        header=header,
        newline="\r\n",
    )
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes() + b"\r\n\r\n")  # BOM, trailing blank lines
    res = read_manifest(path, tmp_path / "images")
    assert res.errors == [] and [c.modality for c in res.cases] == ["xray", "mri"]
    assert res.cases[0].error_type is None and res.cases[0].cost_impact is None


def test_error_severity_and_cost_come_from_the_knowledge_table(src: Path, tmp_path: Path) -> None:
    rows = [
        _row(treatment="Lobectomy", error_type="treatment_mismatch"),
        _row(
            treatment="Lobectomy",
            error_type="treatment_mismatch",
            severity="high",
            cost_impact="123.5",
        ),
    ]
    res = read_manifest(_write_csv(src / "m.csv", rows), tmp_path / "images")
    assert (res.cases[0].severity, res.cases[0].cost_impact) == ("critical", 45000.0)
    assert (res.cases[1].severity, res.cases[1].cost_impact) == ("high", 123.5)


def test_severity_on_a_correct_case_is_an_error(src: Path, tmp_path: Path) -> None:
    res = read_manifest(_write_csv(src / "m.csv", [_row(severity="high")]), tmp_path / "images")
    assert (
        res.cases == []
        and "severity 'high' given for a case without error" in res.errors[0].message
    )


def test_jsonl_with_bad_lines(src: Path, tmp_path: Path) -> None:
    good = {k: v for k, v in _row().items() if v}
    lines = [
        json.dumps(good),  # 1
        "",  # 2 empty
        json.dumps({**good, "finding": 5}),  # 3 wrong type
        "{not json",  # 4
        json.dumps({**good, "colour": "red"}),  # 5 extra column: kept in meta
        json.dumps({k: v for k, v in good.items() if k != "image"}),  # 6 missing column
        json.dumps([1, 2]),  # 7 not an object
        json.dumps(
            {**good, "cost_impact": True, "error_type": "treatment_mismatch"}
        ),  # 8 bool is no number
        json.dumps(
            {
                **good,
                "cost_impact": 250,
                "error_type": "unsupported_by_image",
                "meta": {"note": "x"},
            }
        ),  # 9
    ]
    path = src / "m.jsonl"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8-sig"))
    res = read_manifest(path, tmp_path / "images")
    assert len(res.cases) == 3
    assert (
        res.cases[1].meta["colour"] == "red" and len(res.notes) == 1 and "'colour'" in res.notes[0]
    )
    assert res.cases[2].cost_impact == 250.0 and res.cases[2].meta["note"] == "x"
    assert res.cases[2].meta["format"] == "png"
    msgs = {e.line: e.message for e in res.errors}
    assert msgs[2] == "empty line"
    assert "'finding' must be text, got int 5" in msgs[3]
    assert msgs[4].startswith("invalid JSON")
    assert 5 not in msgs
    assert "missing 'image'" in msgs[6]
    assert "expected a JSON object, got list" in msgs[7]
    assert "cost_impact must be a number, got bool" in msgs[8]


def test_json_list_reports_object_lines(src: Path, tmp_path: Path) -> None:
    good = {k: v for k, v in _row().items() if v}
    text = (
        "[\n"
        + json.dumps(good)
        + ",\n"
        + json.dumps({**good, "modality": "pet"}, indent=2)
        + ",\n"
        + json.dumps(good)
        + "\n]\n"
    )
    path = src / "m.json"
    path.write_text(text)
    res = read_manifest(path, tmp_path / "images")
    assert len(res.cases) == 2 and [
        (e.line, "unknown modality 'pet'" in e.message) for e in res.errors
    ] == [(3, True)]
    bad = src / "bad.json"
    bad.write_text("[\n" + json.dumps(good) + ",\n{oops}\n]")
    res = read_manifest(bad, tmp_path / "images")
    assert (
        len(res.cases) == 1 and res.errors[0].line == 3 and "invalid JSON" in res.errors[0].message
    )
    notalist = src / "obj.json"
    notalist.write_text(json.dumps(good))
    res = read_manifest(notalist, tmp_path / "images")
    assert res.cases == [] and "must be a list of objects" in res.errors[0].message


def test_undecodable_and_missing_manifest(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(",".join(HEADER).encode() + b"\n,xray,a.png,Pneumoth\xe9rax,x,,,,\n")
    res = read_manifest(bad, tmp_path / "images")
    assert res.cases == [] and res.errors[0].line == 2 and "not UTF-8" in res.errors[0].message
    res = read_manifest(tmp_path / "nope.csv", tmp_path / "images")
    assert res.cases == [] and "cannot read the manifest" in res.errors[0].message


def _identified_dicom(path: Path) -> Path:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN-0042-XYZ"
    ds.save_as(path)
    return path


def test_dicom_is_stored_deidentified(src: Path, tmp_path: Path) -> None:
    _identified_dicom(src / "imgs" / "scan.dcm")
    images = tmp_path / "images"
    res = read_manifest(
        _write_csv(src / "m.csv", [_row(image="imgs/scan.dcm", modality="CT-not-known")]), images
    )
    assert "unknown modality" in res.errors[0].message
    res = read_manifest(_write_csv(src / "m.csv", [_row(image="imgs/scan.dcm")]), images)
    (case,) = res.cases
    stored = tmp_path / case.image
    assert case.image.endswith(".dcm") and stored.parent == images
    data = stored.read_bytes()
    assert b"Doe^Jane" not in data and b"MRN-0042-XYZ" not in data
    ds = pydicom.dcmread(stored)
    assert "PatientName" not in ds and "PatientID" not in ds
    assert hashlib.sha256(data).hexdigest() == Path(case.image).stem
    assert case.meta["modality"] == "CT" and "window_center" in case.meta


def test_folder_import(src: Path, tmp_path: Path) -> None:
    """Modality from sub-folder names, finding and treatment from the sidecar cases.csv; an
    image with neither is listed by name with what to add, and nothing is copied for it."""
    (src / "mri").mkdir()
    _identified_dicom(src / "mri" / "IM0001.dcm")
    (src / "ultrasound" / "deep").mkdir(parents=True)
    Image.new("L", (16, 16), 40).save(src / "ultrasound" / "deep" / "u.jpg")
    (src / "ultrasound" / "notes.txt").write_text("not an image")
    (src / ".hidden.png").write_bytes(b"junk")
    (src / "cases.csv").write_text(
        "image,finding,treatment,site\n"
        "mri/IM0001.dcm,Intracranial mass,Neurosurgical referral,north\n"
        "ultrasound/deep/u.jpg,Simple cyst,Routine surveillance,\n"
        "imgs/broken.png,Pneumothorax,Chest tube insertion,\n"
    )
    images = tmp_path / "ws" / "images"
    res = read_manifest(src, images)
    assert sorted(c.modality for c in res.cases) == ["mri", "ultrasound"]
    mri = next(c for c in res.cases if c.modality == "mri")
    assert (
        mri.finding == "Intracranial mass"
        and mri.meta["site"] == "north"
        and mri.error_type is None
    )
    by_file = {Path(e.file).name: e for e in res.errors}
    # broken.png: its row names no modality and imgs/ is no modality folder.
    assert (
        by_file["cases.csv"].line == 4
        and "cannot tell the modality" in by_file["cases.csv"].message
    )
    # a.png and b.png have no row: listed by name, with what to add.
    for name in ("a.png", "b.png"):
        assert (
            by_file[name].line == 0
            and f"add a row for imgs/{name} in cases.csv" in by_file[name].message
        )
        assert "its modality" in by_file[name].message
    assert set(by_file) == {"cases.csv", "a.png", "b.png"}
    # Only the two imported images were copied in.
    assert sorted(p.name for p in images.iterdir()) == sorted(Path(c.image).name for c in res.cases)


def test_folder_without_sidecar_imports_nothing_and_copies_nothing(
    src: Path, tmp_path: Path
) -> None:
    (src / "xray").mkdir()
    Image.new("L", (16, 16), 40).save(src / "xray" / "c.png")
    images = tmp_path / "ws" / "images"
    res = read_manifest(src, images)
    assert res.cases == [] and not (images.exists() and any(images.iterdir()))
    first = res.errors[0]
    assert first.file == str(src) and "no cases.csv in the folder" in first.message
    listed = {Path(e.file).name: e.message for e in res.errors[1:]}
    assert (
        "add a row for xray/c.png in cases.csv" in listed["c.png"]
        and "modality" not in listed["c.png"]
    )


def test_progress_and_cancel(src: Path, tmp_path: Path) -> None:
    events = []
    path = _write_csv(src / "m.csv", [_row(), _row()])
    read_manifest(path, tmp_path / "images", progress=Progress(events.append))
    assert events[-1].step == events[-1].total == 2
    p = Progress()
    p.cancel()
    with pytest.raises(Canceled):
        read_manifest(path, tmp_path / "images", progress=p)
