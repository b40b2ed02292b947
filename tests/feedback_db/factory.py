"""Builders for store tests: a workspace with real image files, cases, versions and verdicts."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from feedback_db import CaseIn, Prediction, PredictionIn, Reviewer, Store

SECRET = "Doe^Jane 1961-02-03"  # what a scanner might write into an image's metadata


def png_bytes(shade: int, *, secret: str | None = SECRET) -> bytes:
    """A small grey PNG, with a text chunk holding a patient name unless ``secret`` is None."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    if secret:
        info.add_text("PatientName", secret)
    buf = io.BytesIO()
    Image.new("L", (8, 8), shade).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def jpeg_bytes(shade: int) -> bytes:
    """A small JPEG with an EXIF segment naming the patient."""
    from PIL import Image

    img = Image.new("RGB", (8, 8), (shade, shade, shade))
    exif = Image.Exif()
    exif[0x010E] = SECRET  # ImageDescription
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    return buf.getvalue()


CASES = [
    (
        "c-xray-1",
        "xray",
        "Pneumonia in the right lower lobe",
        "Oral antibiotics",
        "none",
        None,
        "train",
    ),
    (
        "c-mri-1",
        "mri",
        "Glioblastoma",
        "Aspirin and rest",
        "treatment_mismatch",
        "critical",
        "test",
    ),
    ("c-us-1", "ultrasound", "Gallstones", "Cholecystectomy", "none", None, "test"),
    (
        "c-hist-1",
        "histopathology",
        "Benign tissue",
        "Chemotherapy",
        "unsupported_by_image",
        "high",
        "val",
    ),
]


@dataclass
class Seeded:
    store: Store
    root: Path
    reviewer: Reviewer
    preds: dict[str, tuple[Prediction, Prediction]]  # case_id -> (base's, v2's) latest verdict


def seed(store: Store, root: Path) -> Seeded:
    """Four cases with PNG/JPEG images, versions ``base`` (active) and ``v2``, one verdict each."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    cases = []
    for i, (cid, modality, finding, treatment, err, sev, split) in enumerate(CASES):
        ext = "jpg" if modality == "ultrasound" else "png"
        data = jpeg_bytes(40 * i) if ext == "jpg" else png_bytes(40 * i)
        (root / "images" / f"{cid}.{ext}").write_bytes(data)
        cases.append(
            CaseIn(
                cid,
                modality,
                f"images/{cid}.{ext}",
                finding,
                treatment,
                err,
                sev,
                1000.0 * i,
                split,
                {"window": [40, 400]},
            )
        )
    store.add_cases(cases)
    store.add_model_version("base", "heuristic", "knowledge-table", active=True)
    store.add_model_version("v2", "clip-llm", "tiny-llama", parent="base")
    base_conf = {"c-xray-1": 0.95, "c-mri-1": 0.55, "c-us-1": 0.7, "c-hist-1": 0.6}
    v2_conf = {"c-xray-1": 0.9, "c-mri-1": 0.6, "c-us-1": 0.52, "c-hist-1": 0.8}
    store.add_predictions(
        "base",
        [
            PredictionIn(
                c[0], "CORRECT", "treatment fits", "CORRECT - treatment fits", base_conf[c[0]], 3.0
            )
            for c in CASES
        ],
    )
    store.add_predictions(
        "v2",
        [
            PredictionIn(
                c[0],
                "ERROR" if c[4] != "none" else "CORRECT",
                "v2 says so",
                ("ERROR" if c[4] != "none" else "CORRECT") + " - v2 says so",
                v2_conf[c[0]],
                9.0,
            )
            for c in CASES
        ],
    )
    reviewer = store.ensure_reviewer("dr-lee", "radiologist")
    preds = {}
    for cid, *_ in CASES:
        by_version = {p.version: p for p in store.predictions_for_case(cid)}
        preds[cid] = (by_version["base"], by_version["v2"])
    return Seeded(store, root, reviewer, preds)


def consistent_label(s: Seeded, case_id: str, preference: str) -> str:
    """A true verdict the preference does not contradict (the store refuses contradictions):
    the preferred answer's label for ``a``/``b``; for a tie or both wrong, A's label."""
    a, b = s.preds[case_id]
    return (b if preference == "b" else a).label
