"""expert_feedback.jsonl: the exact TRL shape, standing ratings only, de-identified images."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from feedback_db import CaseIn, PredictionIn, RatingIn, StoreError
from feedback_db.export import export_feedback
from feedback_db.images import ImageError, strip_jpeg, strip_png
from tests.feedback_db.factory import SECRET, Seeded, jpeg_bytes, png_bytes


def _rate(
    s: Seeded, case_id: str, preference: str, true_label: str = "ERROR", **kw: object
) -> RatingIn:
    a, b = s.preds[case_id]
    return RatingIn(case_id, s.reviewer.id, a.id, b.id, preference, true_label, **kw)  # type: ignore[arg-type]


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_trl_lines_are_exactly_the_design(seeded: Seeded, tmp_path: Path) -> None:
    store = seeded.store
    r = store.add_rating(_rate(seeded, "c-mri-1", "b", severity="critical"))
    out = tmp_path / "export" / "expert_feedback.jsonl"
    res = export_feedback(store, out, workspace_root=seeded.root)
    assert (res.rows, res.ratings, res.images_written, res.problems) == (1, 1, 1, [])
    [line] = _read(out)
    image = line["images"][0]
    assert line == {
        "prompt": [
            {
                "role": "user",
                "content": [
                    {"type": "image"},
                    {
                        "type": "text",
                        "text": "Modality: Brain MRI\nClinical Finding: Glioblastoma\nTreatment: Aspirin and rest",
                    },
                ],
            }
        ],
        "chosen": [
            {"role": "assistant", "content": [{"type": "text", "text": "ERROR - v2 says so"}]}
        ],
        "rejected": [
            {"role": "assistant", "content": [{"type": "text", "text": "CORRECT - treatment fits"}]}
        ],
        "images": [image],
        "case_id": "c-mri-1",
        "modality": "mri",
        "error_type": "treatment_mismatch",
        "severity": "critical",
        "true_label": "ERROR",
        "reviewer": "dr-lee",
        "rated_at": r.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "chosen_source": "model",
        "finding": "Glioblastoma",
        "treatment": "Aspirin and rest",
        "preference": "b",
        "rationale": None,
        "answer_a": "CORRECT - treatment fits",
        "answer_b": "ERROR - v2 says so",
    }
    assert list(line)[:12] == [
        "prompt",
        "chosen",
        "rejected",
        "images",
        "case_id",
        "modality",
        "error_type",
        "severity",
        "true_label",
        "reviewer",
        "rated_at",
        "chosen_source",
    ]  # docs/architecture.md's order
    assert line["rated_at"].endswith("Z") and "margin" not in line
    data = (out.parent / image).read_bytes()
    assert image == f"images/{hashlib.sha256(data).hexdigest()}.png"
    assert SECRET.encode() not in data and b"PatientName" not in data
    assert "window" not in out.read_text()  # case meta is not exported


def test_only_standing_ratings_are_exported(seeded: Seeded, tmp_path: Path) -> None:
    store = seeded.store
    store.add_rating(_rate(seeded, "c-mri-1", "a", "CORRECT"))
    store.add_rating(_rate(seeded, "c-mri-1", "both_wrong", rationale="resection"))  # supersedes
    gone = store.add_rating(_rate(seeded, "c-hist-1", "b"))
    store.undo_rating(gone.id)
    store.add_rating(_rate(seeded, "c-xray-1", "tie", "CORRECT"))  # no pair
    out = tmp_path / "f.jsonl"
    res = export_feedback(store, out, workspace_root=seeded.root)
    lines = _read(out)
    assert [
        (x["case_id"], x["chosen"][0]["content"][0]["text"], x["rejected"][0]["content"][0]["text"])
        for x in lines
    ] == [
        ("c-mri-1", "ERROR - resection", "CORRECT - treatment fits"),
        ("c-mri-1", "ERROR - resection", "ERROR - v2 says so"),
    ]
    assert res.rows == 2 and res.ratings == 1
    assert len(list((tmp_path / "images").iterdir())) == 1


def test_reviewer_filter_and_margin_column(seeded: Seeded, tmp_path: Path) -> None:
    store = seeded.store
    other = store.ensure_reviewer("dr-okafor", "oncologist")
    store.add_rating(_rate(seeded, "c-mri-1", "b", margin=2.0))
    a, b = seeded.preds["c-hist-1"]
    store.add_rating(RatingIn("c-hist-1", other.id, a.id, b.id, "b", "ERROR", "high"))
    out = tmp_path / "f.jsonl"
    export_feedback(store, out, workspace_root=seeded.root)
    # One rating has a margin, so every line carries one (0.0 = the plain pairwise loss).
    assert [(x["reviewer"], x["margin"]) for x in _read(out)] == [
        ("dr-lee", 2.0),
        ("dr-okafor", 0.0),
    ]
    export_feedback(store, out, workspace_root=seeded.root, reviewer="dr-okafor")
    assert [(x["reviewer"], "margin" in x) for x in _read(out)] == [("dr-okafor", False)]
    with pytest.raises(StoreError, match="unknown reviewer 'nobody'"):
        export_feedback(store, out, workspace_root=seeded.root, reviewer="nobody")


def test_kto_rows(seeded: Seeded, tmp_path: Path) -> None:
    store = seeded.store
    store.add_rating(
        _rate(seeded, "c-mri-1", "both_wrong", rationale="needs resection", severity="critical")
    )
    store.add_rating(_rate(seeded, "c-xray-1", "tie", "CORRECT"))
    out = tmp_path / "kto.jsonl"
    res = export_feedback(store, out, workspace_root=seeded.root, fmt="kto")
    rows = [
        (x["case_id"], x["completion"][0]["content"][0]["text"], x["label"]) for x in _read(out)
    ]
    # One rule with the pairs: "both wrong" makes both answers undesirable (even B, whose verdict
    # word was right) and the clinician's rationale desirable; a tie of two right answers, both
    # desirable.
    assert rows == [
        ("c-mri-1", "ERROR - needs resection", True),
        ("c-mri-1", "CORRECT - treatment fits", False),
        ("c-mri-1", "ERROR - v2 says so", False),
        ("c-xray-1", "CORRECT - treatment fits", True),
        ("c-xray-1", "CORRECT - v2 says so", True),
    ]
    assert res.rows == 5 and res.ratings == 2
    assert all(x["prompt"][0]["role"] == "user" and x["images"] for x in _read(out))
    with pytest.raises(ValueError, match="format"):
        export_feedback(store, out, workspace_root=seeded.root, fmt="csv")


def test_missing_image_leaves_the_row_out_and_says_so(seeded: Seeded, tmp_path: Path) -> None:
    store = seeded.store
    store.add_rating(_rate(seeded, "c-mri-1", "b"))
    store.add_rating(_rate(seeded, "c-hist-1", "b"))
    (seeded.root / "images" / "c-hist-1.png").unlink()
    out = tmp_path / "f.jsonl"
    res = export_feedback(store, out, workspace_root=seeded.root)
    assert [x["case_id"] for x in _read(out)] == ["c-mri-1"]
    assert (
        len(res.problems) == 1
        and "c-hist-1" in res.problems[0]
        and "cannot read image" in res.problems[0]
    )


def test_jpeg_and_converted_images(seeded: Seeded, tmp_path: Path) -> None:
    store = seeded.store
    store.add_rating(_rate(seeded, "c-us-1", "a", "CORRECT"))
    dicom = seeded.root / "images" / "c-dcm.dcm"
    dicom.write_bytes(b"\0" * 128 + b"DICM" + b"PatientName=" + SECRET.encode())
    store.add_cases([CaseIn("c-dcm", "xray", "images/c-dcm.dcm", "Fracture", "Cast")])
    store.add_predictions("base", [PredictionIn("c-dcm", "CORRECT", "fits", "CORRECT - fits", 0.6)])
    store.add_predictions("v2", [PredictionIn("c-dcm", "ERROR", "no", "ERROR - no", 0.6)])
    a, b = store.predictions_for_case("c-dcm")
    store.add_rating(RatingIn("c-dcm", seeded.reviewer.id, a.id, b.id, "a", "CORRECT"))
    out = tmp_path / "f.jsonl"
    res = export_feedback(store, out, workspace_root=seeded.root)
    assert [x["case_id"] for x in _read(out)] == ["c-us-1"]
    assert "no converter" in res.problems[0]
    seen: list[Path] = []

    def convert(path: Path) -> tuple[bytes, str]:
        seen.append(path)
        return png_bytes(7), "png"

    res = export_feedback(store, out, workspace_root=seeded.root, image_converter=convert)
    lines = _read(out)
    assert [x["images"][0].rsplit(".", 1)[1] for x in lines] == [
        "jpg",
        "png",
    ] and res.problems == []
    assert seen == [dicom]
    for x in lines:
        data = (tmp_path / x["images"][0]).read_bytes()
        assert SECRET.encode() not in data


def test_export_is_atomic(seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = seeded.store
    store.add_rating(_rate(seeded, "c-mri-1", "b"))
    out = tmp_path / "f.jsonl"
    out.write_text("previous export\n")
    import feedback_db.export as export_mod

    def boom(*a: object, **k: object) -> object:
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_mod, "assistant_turn", boom)
    with pytest.raises(RuntimeError):
        export_feedback(store, out, workspace_root=seeded.root)
    assert out.read_text() == "previous export\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_export_and_its_images_are_owner_only(seeded: Seeded, tmp_path: Path) -> None:
    """Ratings and their images are clinical data: 0o600, whatever the umask allows others."""
    import os
    import stat

    seeded.store.add_rating(_rate(seeded, "c-mri-1", "b"))
    out = tmp_path / "exp" / "f.jsonl"
    old = os.umask(0o022)
    try:
        export_feedback(seeded.store, out, workspace_root=seeded.root)
    finally:
        os.umask(old)
    written = [out, *(out.parent / "images").iterdir()]
    assert len(written) == 2
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in written} == {
        p.name: 0o600 for p in written
    }


def test_metadata_stripping_keeps_pixels() -> None:
    from io import BytesIO

    from PIL import Image

    png = png_bytes(99)
    clean = strip_png(png)
    assert SECRET.encode() in png and SECRET.encode() not in clean
    assert Image.open(BytesIO(clean)).getpixel((0, 0)) == 99
    jpg = jpeg_bytes(120)
    clean_jpg = strip_jpeg(jpg)
    assert SECRET.encode() in jpg and SECRET.encode() not in clean_jpg
    assert Image.open(BytesIO(clean_jpg)).size == (8, 8)
    with pytest.raises(ImageError, match="truncated"):
        strip_png(png[:-20], "x.png")


def test_a_burned_in_image_is_exported_only_after_a_clinician_confirms_it(
    seeded: Seeded, tmp_path: Path
) -> None:

    store = seeded.store
    store.add_cases(
        [
            CaseIn(
                "c-burn", "xray", "images/c-xray-1.png", "Pneumonia", "Antibiotics", burned_in=True
            )
        ]
    )
    store.add_predictions("base", [PredictionIn("c-burn", "CORRECT", "fits", "CORRECT - fits")])
    store.add_predictions("v2", [PredictionIn("c-burn", "ERROR", "no", "ERROR - no")])
    a, b = (p for p in store.predictions_for_case("c-burn"))
    store.add_rating(RatingIn("c-burn", seeded.reviewer.id, a.id, b.id, "a", "CORRECT"))
    out = tmp_path / "f.jsonl"
    res = export_feedback(store, out, workspace_root=seeded.root)
    assert res.rows == 0 and "burned into the pixels" in res.problems[0]
    with pytest.raises(StoreError, match="declares no burned-in text"):
        store.confirm_no_identifier("c-xray-1", "dr-lee")
    case = store.confirm_no_identifier("c-burn", "dr-lee")
    assert case.burned_in_cleared_by == "dr-lee" and case.burned_in_cleared_at is not None
    res = export_feedback(store, out, workspace_root=seeded.root)
    assert res.rows == 1 and res.problems == []
