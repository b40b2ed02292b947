"""Import cases from a manifest (CSV, JSON list, JSONL) or a folder of images.

Every row is checked on its own: a bad row (missing column, wrong type or value, unknown
modality, missing, unreadable or out-of-bounds image, empty line) becomes a ``RowError`` naming
the file and line, and the good rows still import. Columns that are not case fields are kept in
the case's meta and reported once, as a note. Each image path must stay inside the images root
(the manifest's folder unless another is given; symlinks resolved first, nothing outside looked
at). Each image is decoded by ``load_image`` (so what is imported can be shown; images above the
pixel budget are refused before decoding) and copied into the workspace's image folder under its
content hash, ``images/<sha256>.<ext>``; DICOM files are stored de-identified
(``core.cases.dicom_deid``). Nothing is referenced in place, the same bytes twice are stored once, and
nothing is stored for a row that is rejected.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.cases.images import DEFAULT_MAX_PIXELS, ImageError, LoadedImage, load_image
from core.cases.records import ERROR_TYPES, MODALITY_ALIASES, SEVERITIES, SPLITS, Case, new_case_id
from core.clinical.knowledge import KnowledgeTable
from core.manifests.rows import COLUMNS, RawRow
from core.runtime.files import atomic_write
from core.runtime.paths import OutsideRoot, resolve_inside
from core.runtime.progress import Progress

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
    """The imported cases, in file order; the rejected rows; notes (not errors: e.g. columns
    kept in meta); and the images this call wrote (``images/<name>``, for a caller that must
    remove them again when the cases are not kept)."""

    cases: list[Case] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    new_images: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class ImportOptions:
    """How images come in.

    Attributes:
        images_root: image paths must stay inside it (relative ones are relative to it);
            None is the manifest's folder.
        allow_burned_in: keep DICOM files that declare burned-in text, flagged
            (``meta["burned_in"]``); refused otherwise.
        max_pixels: the pixel budget; larger images are refused before decoding.
        secret: the workspace's de-identification key; None reads (or makes) the one of the
            workspace that holds the image folder (``core.cases.dicom_deid.workspace_secret``).
    """

    images_root: Path | None = None
    allow_burned_in: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    secret: bytes | None = None


def with_secret(opts: ImportOptions, images_dir: Path) -> ImportOptions:
    if opts.secret is not None:
        return opts
    from dataclasses import replace

    from core.cases.dicom_deid import workspace_secret

    return replace(opts, secret=workspace_secret(images_dir.parent))


def read_rows(
    path: Path,
    rows: list[RawRow],
    root: Path,
    images_dir: Path,
    opts: ImportOptions,
    kt: KnowledgeTable,
    progress: Progress | None,
    result: ManifestResult,
) -> None:
    """Turn ``rows`` of the manifest ``path`` into cases in ``result`` (errors and notes too)."""
    seen: dict[str, int] = {}
    extra_columns: set[str] = set()
    for i, row in enumerate(rows):
        if progress is not None:
            progress.check()
            progress.update("import", i, len(rows))
        extra_columns.update(
            k for k in row.values if k not in COLUMNS and not (k == "meta" and row.typed)
        )
        try:
            case = _case_from_row(row, root, images_dir, kt, seen, opts, result)
        except _RowProblem as exc:
            result.errors.append(RowError(str(path), row.line, str(exc)))
            continue
        seen[case.case_id] = row.line
        result.cases.append(case)
    if progress is not None:
        progress.update("import", len(rows), len(rows))
    if extra_columns:
        names = ", ".join(map(repr, sorted(extra_columns)))
        result.notes.append(
            f"{path}: {names} {'is not a case field' if len(extra_columns) == 1 else 'are not case fields'}; kept in each case's meta"
        )
    result.errors.sort(key=lambda e: (e.file, e.line))


class _RowProblem(Exception):
    """Everything wrong with one row, in words."""


def _case_from_row(
    row: RawRow,
    root: Path,
    images_dir: Path,
    kt: KnowledgeTable,
    seen: dict[str, int],
    opts: ImportOptions,
    result: ManifestResult,
) -> Case:
    if row.problems:
        raise _RowProblem("; ".join(row.problems))
    rec = row.values
    problems: list[str] = []
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
    meta = rec.get("meta") if row.typed else None
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        problems.append("'meta' must be an object")
        meta = {}
    extra = {
        k: v
        for k, v in rec.items()
        if k not in COLUMNS and not (k == "meta" and row.typed) and v not in (None, "")
    }
    case_id = opt["case_id"] or new_case_id()
    if case_id in seen:
        problems.append(f"duplicate case_id {case_id!r} (first on line {seen[case_id]})")
    image = text["image"] or ""
    image_path = None
    if image:
        try:
            image_path = resolve_inside(root, image)
        except OutsideRoot:
            problems.append(
                f"image {image!r} is outside the images root {root}; not opened "
                "(move it there, or give another images root)"
            )
    if problems:
        raise _RowProblem("; ".join(problems))
    assert image_path is not None and modality is not None  # reported above otherwise
    finding, treatment = text["finding"] or "", text["treatment"] or ""
    if not image_path.is_file():
        raise _RowProblem(f"image file not found: {image}")
    try:
        rel, loaded, new = _store(image_path, images_dir, opts)
    except ImageError as exc:
        raise _RowProblem(f"unreadable image {image}: {exc.reason}") from exc
    if new:
        result.new_images.append(rel)
    error_type, severity = opt["error_type"], opt["severity"]
    if error_type and error_type != "none":
        severity = severity or kt.severity_of(treatment)
        cost = kt.cost_of(treatment) if cost is None else cost
    elif error_type == "none" and cost is None:
        cost = 0.0
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
        # What the image says about itself (format, window, burned_in) wins over the manifest.
        meta={**meta, **extra, **loaded.meta},
    )


def _text(rec: dict[str, Any], key: str, problems: list[str], *, required: bool) -> str | None:
    value = rec.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            problems.append(f"missing {key!r}" if key not in rec else f"empty {key!r}")
        return None
    if not isinstance(value, str):
        problems.append(f"{key!r} must be text, got {type(value).__name__} {str(value)[:40]}")
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
    except (ValueError, OverflowError):
        problems.append(f"cost_impact must be a number, got {str(value)[:40]!r}")
        return None
    if not math.isfinite(cost) or cost < 0:
        problems.append(f"cost_impact must be a finite number >= 0, got {str(value)[:40]!r}")
        return None
    return cost


def store_image(
    path: Path, images_dir: Path, options: ImportOptions | None = None
) -> tuple[str, LoadedImage]:
    """Validate the image at ``path`` and copy it into ``images_dir`` under its content hash.

    DICOM is stored de-identified (and the stored copy is decoded again, to be sure it shows).
    Returns the stored path relative to ``images_dir``'s parent, and the decoded image.

    Raises:
        ImageError: the image cannot be decoded or de-identified, is over the pixel budget, or
            declares burned-in text and ``options.allow_burned_in`` is false.
    """
    opts = with_secret(options or ImportOptions(), Path(images_dir))
    rel, loaded, _ = _store(Path(path), Path(images_dir), opts)
    return rel, loaded


def _store(path: Path, images_dir: Path, opts: ImportOptions) -> tuple[str, LoadedImage, bool]:
    loaded = load_image(path, max_pixels=opts.max_pixels)
    if loaded.meta.get("format") == "dicom":
        from core.cases.dicom import load_dicom_bytes
        from core.cases.dicom_deid import deidentified_bytes

        assert opts.secret is not None
        data = deidentified_bytes(path, secret=opts.secret, allow_burned_in=opts.allow_burned_in)
        year = loaded.meta.get("study_year")
        loaded = load_dicom_bytes(data, str(path), max_pixels=opts.max_pixels)
        if year is not None:  # the stored copy holds no date; the case keeps the year
            loaded.meta["study_year"] = year
        suffix = ".dcm"
    else:
        data = path.read_bytes()
        suffix = _FORMAT_SUFFIX.get(str(loaded.meta.get("format")), path.suffix.lower() or ".img")
    name = hashlib.sha256(data).hexdigest() + suffix
    images_dir.mkdir(parents=True, exist_ok=True)
    target = images_dir / name
    new = not target.exists()
    if new:
        # Owner-only (0o600): a clinical image. Not fsynced one by one (an import may store
        # thousands, and each is made again from its source by importing it again).
        atomic_write(target, data, fsync=False)
    return f"{images_dir.name}/{name}", loaded, new
