"""Import cases from a manifest (CSV, JSON list, JSONL) or a folder of images.

Every row is checked on its own: a bad row (missing or unknown column, wrong type or value,
unknown modality, missing or unreadable image, empty line) becomes a ``RowError`` naming the
file and line, and the good rows still import. Each image is decoded by ``load_image`` (so what
is imported can be shown) and copied into the workspace's image folder under its content hash,
``images/<sha256>.<ext>``; DICOM files are stored de-identified (``core.dicom``). Nothing is
referenced in place, and the same bytes twice are stored once.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.cases import ERROR_TYPES, MODALITY_ALIASES, SEVERITIES, SPLITS, Case, new_case_id
from core.images import ImageError, LoadedImage, load_image
from core.knowledge import KnowledgeTable, default_knowledge
from core.manifest_rows import COLUMNS, RawRow, parse_manifest
from core.progress import Progress

# Files a folder import passes over without complaint: not images, by name.
SKIP_SUFFIXES = frozenset(
    {
        ".txt",
        ".md",
        ".json",
        ".jsonl",
        ".csv",
        ".xml",
        ".html",
        ".pdf",
        ".zip",
        ".gz",
        ".py",
        ".ini",
    }
)
_FORMAT_SUFFIX = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif", "bmp": ".bmp", "dicom": ".dcm"}


@dataclass(frozen=True)
class RowError:
    """A rejected row: ``file:line: message`` (line 0 for a file of a folder import)."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}: {self.message}"
        return f"{self.file}: {self.message}"


@dataclass
class ManifestResult:
    """The imported cases, in file order, and the rejected rows."""

    cases: list[Case] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def read_manifest(
    path: Path,
    images_dir: Path,
    *,
    progress: Progress | None = None,
    knowledge: KnowledgeTable | None = None,
) -> ManifestResult:
    """Read cases from the manifest or folder at ``path`` and store their images in ``images_dir``.

    ``Case.image`` is relative to ``images_dir``'s parent (the workspace root):
    ``images/<sha256>.<ext>``. Image paths in a manifest are relative to the manifest's folder,
    or absolute. Errors with a severity or cost missing are completed from the knowledge table.

    Raises:
        core.progress.Canceled: ``progress`` was canceled (images stored so far stay; they are
            content-addressed and harmless).
    """
    path = Path(path)
    if path.is_dir():
        return _read_folder(path, Path(images_dir), progress)
    result = ManifestResult()
    rows, file_errors = parse_manifest(path)
    result.errors.extend(RowError(str(path), line, msg) for line, msg in file_errors)
    kt = knowledge or default_knowledge()
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        if progress is not None:
            progress.check()
            progress.update("import", i, len(rows))
        try:
            case = _case_from_row(row, path.parent, Path(images_dir), kt, seen)
        except _RowProblem as exc:
            result.errors.append(RowError(str(path), row.line, str(exc)))
            continue
        seen[case.case_id] = row.line
        result.cases.append(case)
    if progress is not None:
        progress.update("import", len(rows), len(rows))
    result.errors.sort(key=lambda e: e.line)
    return result


class _RowProblem(Exception):
    """Everything wrong with one row, in words."""


def _case_from_row(
    row: RawRow, base: Path, images_dir: Path, kt: KnowledgeTable, seen: dict[str, int]
) -> Case:
    if row.problems:
        raise _RowProblem("; ".join(row.problems))
    rec, problems = row.values, []
    unknown = sorted(k for k in rec if k not in COLUMNS and not (k == "meta" and row.typed))
    if unknown:
        problems.append(
            f"unknown column {', '.join(map(repr, unknown))}; expected {', '.join(COLUMNS)}"
        )
    text = {
        k: _text(rec, k, problems, required=True)
        for k in ("modality", "image", "finding", "treatment")
    }
    opt = {
        k: _text(rec, k, problems, required=False)
        for k in ("case_id", "error_type", "severity", "split")
    }
    modality = None
    if text["modality"]:
        modality = MODALITY_ALIASES.get(text["modality"].lower())
        if modality is None:
            problems.append(
                f"unknown modality {text['modality']!r}; expected one of xray, histopathology, mri, ultrasound"
            )
    _choice(opt, "error_type", ERROR_TYPES, problems)
    _choice(opt, "severity", SEVERITIES, problems)
    _choice(opt, "split", SPLITS, problems)
    if opt["error_type"] == "none" and opt["severity"]:
        problems.append(
            f"severity {opt['severity']!r} given for a case without error (error_type none)"
        )
    cost = _cost(rec.get("cost_impact"), problems)
    meta = rec.get("meta") or {}
    if not isinstance(meta, dict):
        problems.append("'meta' must be an object")
    case_id = opt["case_id"] or new_case_id()
    if case_id in seen:
        problems.append(f"duplicate case_id {case_id!r} (first on line {seen[case_id]})")
    if problems:
        raise _RowProblem("; ".join(problems))
    # Past the check above, the required fields are present.
    image, finding, treatment = text["image"] or "", text["finding"] or "", text["treatment"] or ""
    image_path = Path(image).expanduser()
    if not image_path.is_absolute():
        image_path = base / image_path
    if not image_path.is_file():
        raise _RowProblem(f"image file not found: {image}")
    try:
        rel, loaded = store_image(image_path, images_dir)
    except ImageError as exc:
        raise _RowProblem(f"unreadable image {image}: {exc.reason}") from exc
    error_type, severity = opt["error_type"], opt["severity"]
    if error_type and error_type != "none":
        severity = severity or kt.severity_of(treatment)
        cost = kt.cost_of(treatment) if cost is None else cost
    elif error_type == "none" and cost is None:
        cost = 0.0
    assert modality is not None  # a bad modality was reported above
    return Case(
        case_id=case_id,
        modality=modality,
        image=rel,
        finding=finding,
        treatment=treatment,
        error_type=error_type,
        severity=severity,
        cost_impact=cost,
        split=opt["split"],
        meta={**meta, **loaded.meta},
    )


def _text(rec: dict[str, Any], key: str, problems: list[str], *, required: bool) -> str | None:
    value = rec.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            problems.append(f"missing {key!r}" if key not in rec else f"empty {key!r}")
        return None
    if not isinstance(value, str):
        problems.append(f"{key!r} must be text, got {type(value).__name__} {value!r}")
        return None
    return value.strip()


def _choice(
    opt: dict[str, str | None], key: str, allowed: tuple[str, ...], problems: list[str]
) -> None:
    value = opt[key]
    if value is None:
        return
    if value.lower() not in allowed:
        problems.append(f"{key} {value!r} is not one of {', '.join(allowed)}")
        opt[key] = None
    else:
        opt[key] = value.lower()


def _cost(value: Any, problems: list[str]) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        problems.append(f"cost_impact must be a number, got {type(value).__name__} {value!r}")
        return None
    try:
        cost = float(value)
    except ValueError:
        problems.append(f"cost_impact must be a number, got {value!r}")
        return None
    if not math.isfinite(cost) or cost < 0:
        problems.append(f"cost_impact must be a finite number >= 0, got {value!r}")
        return None
    return cost


def store_image(path: Path, images_dir: Path) -> tuple[str, LoadedImage]:
    """Validate the image at ``path`` and copy it into ``images_dir`` under its content hash.

    DICOM is stored de-identified (and the stored copy is decoded again, to be sure it shows).
    Returns the stored path relative to ``images_dir``'s parent, and the decoded image.

    Raises:
        ImageError: the image cannot be decoded or de-identified.
    """
    loaded = load_image(path)
    if loaded.meta.get("format") == "dicom":
        from core.dicom import load_dicom_bytes
        from core.dicom_deid import deidentified_bytes

        data = deidentified_bytes(path)
        loaded = load_dicom_bytes(data, str(path))
        suffix = ".dcm"
    else:
        data = path.read_bytes()
        suffix = _FORMAT_SUFFIX.get(str(loaded.meta.get("format")), path.suffix.lower() or ".img")
    name = hashlib.sha256(data).hexdigest() + suffix
    images_dir.mkdir(parents=True, exist_ok=True)
    target = images_dir / name
    if not target.exists():
        fd, tmp = tempfile.mkstemp(dir=images_dir, prefix=".tmp-", suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return f"{images_dir.name}/{name}", loaded


def _read_folder(root: Path, images_dir: Path, progress: Progress | None) -> ManifestResult:
    """One case per image; modality from the nearest folder named for one, else the DICOM tag.

    Finding and treatment are empty and the ground truth unknown: a folder carries only images
    (docs/cases.md). Hidden files, DICOMDIR and files with non-image suffixes are passed over.
    """
    result = ManifestResult()
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.suffix.lower() not in SKIP_SUFFIXES
        and p.name.upper() != "DICOMDIR"
        and images_dir.resolve() not in p.resolve().parents
    )
    for i, p in enumerate(files):
        if progress is not None:
            progress.check()
            progress.update("import", i, len(files))
        rel_parts = p.relative_to(root).parts[:-1]
        modality = next(
            (
                MODALITY_ALIASES[d.lower()]
                for d in reversed(rel_parts)
                if d.lower() in MODALITY_ALIASES
            ),
            None,
        )
        try:
            stored, loaded = store_image(p, images_dir)
        except ImageError as exc:
            result.errors.append(RowError(str(p), 0, f"unreadable image: {exc.reason}"))
            continue
        if modality is None:
            modality = MODALITY_ALIASES.get(str(loaded.meta.get("modality", "")).lower())
        if modality is None:
            result.errors.append(
                RowError(
                    str(p),
                    0,
                    "cannot tell the modality: put the image in a folder named xray, histopathology, "
                    "mri or ultrasound (or use a manifest)",
                )
            )
            continue
        result.cases.append(Case(new_case_id(), modality, stored, "", "", meta=dict(loaded.meta)))
    if progress is not None:
        progress.update("import", len(files), len(files))
    return result
