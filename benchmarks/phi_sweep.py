"""PHI sweep: every patient-identifying value of pydicom's test files, searched for after import.

    .venv/bin/python -m benchmarks.phi_sweep [--keep DIR]

Takes pydicom's own test files and, when the ``pydicom-data`` package is installed, its 68 more
(never downloaded), and collects from each the values that identify a patient, a study or a
site, wherever they sit (nested sequences and private tags included): person names, the patient
module's text, ids and accession numbers, institutions, stations, serial numbers, every date and
date-time (also as ``YYYY-MM-DD``), every instance UID (not the implementation UID, which names
the software that wrote the file), and the text of private tags. Values under
6 characters, and values of one repeated character (``000000000``), are left out (they would
match image bytes by chance, and identify no one) and counted.

Then it does what a clinician does: imports every file with pixel data into a fresh workspace
(``core.manifests.reader.read_manifest``, burned-in files allowed so none escapes the sweep), rates each
case, and exports ``expert_feedback.jsonl`` with its images (``core.cases.images.to_png_bytes`` for
DICOM). Each value is searched for, as bytes (ASCII/UTF-8 and UTF-16-LE), in the database file
(with its WAL), every stored image (a stored DICOM's pixel data left aside: pixels are not
tags, and text burned into them is out of reach, docs/cases.md), the export file and every
exported image. As a control, each value must be found by the same search in its own source
file. The test ``tests/core/cases/test_phi_sweep.py`` runs
this and asserts zero hits.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID_dictionary

MIN_LENGTH = 6
_TEXT_VRS = {
    "PN",
    "LO",
    "SH",
    "ST",
    "LT",
    "UT",
    "UC",
    "AE",
    "DA",
    "DT",
    "TM",
    "UI",
    "CS",
    "AS",
    "UR",
}
_IDENTIFYING = {
    "AccessionNumber",
    "StudyID",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "DeviceSerialNumber",
    "RequestedProcedureID",
    "ScheduledProcedureStepID",
    "PerformedProcedureStepID",
    "IssuerOfPatientID",
    "MilitaryRank",
    "BranchOfService",
    "MedicalRecordLocator",
    "RegionOfResidence",
    "CountryOfResidence",
    "Occupation",
    "AdmissionID",
    "ServiceEpisodeID",
    "DetectorID",
    "GantryID",
    "ManufacturerModelName",
    "StudyDescription",
    "SeriesDescription",
    "ProtocolName",
    "PerformedProcedureStepDescription",
    "RequestingService",
    "ImageComments",
    "AdditionalPatientHistory",
    "ReasonForStudy",
}
_NOT_PATIENT = {"PatientPosition", "PatientOrientation", "PatientIdentityRemoved", "PatientSex"}
# Names the software that wrote a file (pydicom writes its own into every copy), not a patient.
_SOFTWARE = {"ImplementationClassUID", "ImplementationVersionName"}


def source_files() -> list[Path]:
    """pydicom's local test files and pydicom-data's (when installed); nothing is downloaded."""
    from pydicom.data.data_manager import DATA_ROOT, external_data_sources

    files = [
        p
        for p in sorted((Path(DATA_ROOT) / "test_files").rglob("*"))
        if p.is_file() and p.suffix != ".py"
    ]
    for source in external_data_sources().values():
        files += [Path(p) for p in source.get_paths("**/*", 0)]
    return files


def _read(path: Path) -> Dataset | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(path, force=True)
    except Exception:  # noqa: BLE001 - not DICOM at all
        return None


def _texts(value: object) -> list[str]:
    values = value if isinstance(value, list | tuple | pydicom.multival.MultiValue) else [value]
    out = []
    for v in values:
        if isinstance(v, bytes):
            try:
                v = v.decode("latin-1")
            except UnicodeDecodeError:
                continue
        text = str(v).strip().strip("\x00").strip()
        if text:
            out.append(text)
    return out


def identifying_values(ds: Dataset) -> set[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns as it converts odd values
        return _identifying(ds)


def _identifying(ds: Dataset) -> set[str]:
    """The values of ``ds`` (recursively) that identify a patient, study, site or instance."""
    found: set[str] = set()
    elements = list(ds.iterall())
    if getattr(ds, "file_meta", None) is not None:
        elements += list(ds.file_meta.iterall())
    for elem in elements:
        kw, vr = elem.keyword or "", elem.VR
        if vr == "SQ" or vr not in _TEXT_VRS or kw in _SOFTWARE:
            continue
        wanted = (
            vr in ("PN", "DA", "DT")
            or (vr == "UI" and str(elem.value) not in UID_dictionary)
            or kw in _IDENTIFYING
            or (
                (kw.startswith("Patient") or kw.startswith("OtherPatient"))
                and kw not in _NOT_PATIENT
            )
            or (elem.tag.is_private and vr not in ("CS", "UI"))
        )
        if not wanted:
            continue
        try:
            texts = _texts(elem.value)
        except Exception:  # noqa: BLE001 - a value pydicom cannot convert
            continue
        for text in texts:
            found.add(text)
            if vr == "DA" and len(text) == 8 and text.isdigit():
                found.add(f"{text[:4]}-{text[4:6]}-{text[6:]}")  # the form the old meta used
    return found


def _needles(value: str) -> list[bytes]:
    return [value.encode("utf-8"), value.encode("utf-16-le")]


def _searchable(p: Path) -> bytes:
    """The bytes of ``p``; for a stored DICOM, without its pixel data."""
    data = p.read_bytes()
    if p.suffix == ".dcm":
        ds = _read(p)
        pixels = ds["PixelData"].value if ds is not None and "PixelData" in ds else None
        if isinstance(pixels, bytes) and pixels:
            data = data.replace(pixels, b"")
        # The implementation UID names the software that wrote our copy (pydicom's), which is
        # also the root some test files use for their creator UID: ours, not the patient's.
        from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

        data = data.replace(PYDICOM_IMPLEMENTATION_UID.encode(), b"")
    return data


def _kept(value: str) -> bool:
    return len(value) >= MIN_LENGTH and len(set(value)) > 1


def _hits(values: list[str], files: list[Path]) -> dict[str, list[str]]:
    blobs = [(p, _searchable(p)) for p in files if p.is_file()]
    hits: dict[str, list[str]] = {}
    for value in values:
        where = [p.name for p, data in blobs if any(n in data for n in _needles(value))]
        if where:
            hits[value] = where
    return hits


@dataclass
class SweepResult:
    source_files: int = 0
    dicom_files: int = 0
    with_pixels: int = 0
    imported: int = 0
    rejected: dict[str, str] = field(default_factory=dict)
    exported_rows: int = 0
    values: int = 0
    short_values_skipped: int = 0
    control_hits: int = 0
    hits: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    @property
    def total_hits(self) -> int:
        return sum(len(h) for h in self.hits.values())


def sweep(work: Path) -> SweepResult:
    """Run the sweep in the empty folder ``work`` (see the module docstring)."""
    from app.convert import case_in_from_case
    from core.cases.images import to_png_bytes
    from core.manifests.manifest import ImportOptions
    from core.manifests.reader import read_manifest
    from feedback_db import PredictionIn, RatingIn, open_store
    from feedback_db.export import export_feedback

    res = SweepResult()
    files = source_files()
    res.source_files = len(files)
    values: set[str] = set()
    pixel_files: list[Path] = []
    controls = 0
    for p in files:
        ds = _read(p)
        if ds is None or len(ds) == 0:
            continue
        res.dicom_files += 1
        own = identifying_values(ds)
        values |= own
        if any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            pixel_files.append(p)
        data = p.read_bytes()
        controls += sum(1 for v in own if _kept(v) and any(n in data for n in _needles(v)))
    res.with_pixels = len(pixel_files)
    long_values = sorted(v for v in values if _kept(v))
    res.values, res.short_values_skipped = len(long_values), len(values) - len(long_values)
    res.control_hits = controls

    ws = work / "ws"
    manifest = work / "manifest.jsonl"
    rows = [
        {
            "modality": "xray",
            "image": str(p),
            "finding": "Pneumothorax",
            "treatment": "Chest tube insertion",
            "case_id": f"sweep-{i:04d}",
        }
        for i, p in enumerate(pixel_files)
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    opts = ImportOptions(images_root=Path("/"), allow_burned_in=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pydicom's notes on odd test files
        result = read_manifest(manifest, ws / "images", options=opts)
    res.imported = len(result.cases)
    res.rejected = {Path(rows[e.line - 1]["image"]).name: e.message for e in result.errors}
    with open_store(f"sqlite:///{ws / 'medreview.db'}") as store:
        store.add_cases(case_in_from_case(c) for c in result.cases)
        store.add_model_version("a", "heuristic", "knowledge-table", active=True)
        store.add_model_version("b", "heuristic", "knowledge-table")
        for name, label in (("a", "ERROR"), ("b", "CORRECT")):
            store.add_predictions(
                name,
                [
                    PredictionIn(c.case_id, label, "r", f"{label} - r", 0.6, 1.0)
                    for c in result.cases
                ],
            )
        reviewer = store.ensure_reviewer("sweeper", "radiologist")
        for c in result.cases:
            by = {p.version: p for p in store.predictions_for_case(c.case_id)}
            store.add_rating(
                RatingIn(c.case_id, reviewer.id, by["a"].id, by["b"].id, "a", "ERROR", "high")
            )
        out = work / "export" / "expert_feedback.jsonl"
        res.exported_rows = export_feedback(
            store, out, workspace_root=ws, image_converter=to_png_bytes
        ).rows
    places = {
        "database": sorted(ws.glob("medreview.db*")),
        "stored images": sorted((ws / "images").iterdir()),
        "export file": [out],
        "exported images": sorted((out.parent / "images").iterdir()),
    }
    res.hits = {where: _hits(long_values, paths) for where, paths in places.items()}
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", metavar="DIR", help="run in DIR (kept) instead of a temporary folder")
    args = ap.parse_args(argv)
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        res = sweep(Path(args.keep))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            res = sweep(Path(tmp))
    print(
        f"source files {res.source_files}, DICOM {res.dicom_files}, with pixels {res.with_pixels}, "
        f"imported {res.imported}, refused {len(res.rejected)}, exported rows {res.exported_rows}"
    )
    print(
        f"identifying values searched {res.values} (shorter than {MIN_LENGTH} or one repeated character, "
        f"skipped: {res.short_values_skipped}); control: {res.control_hits} (file, value) pairs found in the source files"
    )
    for where, hits in res.hits.items():
        print(f"hits in {where}: {len(hits)}" + (f" {json.dumps(hits)[:300]}" if hits else ""))
    for name, why in sorted(res.rejected.items()):
        print(f"  refused {name}: {why}")
    summary = {k: v for k, v in asdict(res).items() if k not in ("rejected", "hits")}
    print(json.dumps({**summary, "hits": {k: len(v) for k, v in res.hits.items()}}))
    return 0 if res.total_hits == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
