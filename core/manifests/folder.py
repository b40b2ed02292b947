"""Import a folder of images: the modality from sub-folder names, the rest from a sidecar manifest.

The sidecar is ``cases.csv`` (or ``cases.jsonl`` / ``cases.json``) at the top of the folder: an
ordinary manifest (``core.manifests.rows``) whose ``image`` paths are relative to the folder and
whose ``modality`` column may be left out where a folder on the image's path names it (``xray/``,
``MR/``, ``ultrasound/``...; a DICOM file's Modality tag is the last resort). Every row is checked
as a manifest row is; a folder name and a sidecar modality that disagree reject the row. An image
in the folder that no row names is listed by name with what to add, and nothing is copied for it:
images are stored only for rows that import. Hidden files, ``DICOMDIR``, the sidecar and files
with non-image suffixes are passed over.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path, PurePath

from core.cases.records import MODALITY_ALIASES
from core.clinical.knowledge import KnowledgeTable
from core.manifests.manifest import ImportOptions, ManifestResult, RowError, read_rows
from core.manifests.rows import RawRow, parse_manifest
from core.runtime.paths import OutsideRoot, resolve_inside
from core.runtime.progress import Progress

SIDECAR_NAMES: tuple[str, ...] = ("cases.csv", "cases.jsonl", "cases.json")
# Files a folder import passes over without complaint: not images, by name.
SKIP_SUFFIXES = frozenset(
    {
        ".txt",
        ".md",
        ".json",
        ".jsonl",
        ".ndjson",
        ".csv",
        ".tsv",
        ".xml",
        ".html",
        ".pdf",
        ".zip",
        ".gz",
        ".py",
        ".ini",
        ".yaml",
        ".yml",
    }
)
_FOLDERS_HINT = "a folder named xray, histopathology, mri or ultrasound on its path"


def folder_modality(parts: tuple[str, ...]) -> str | None:
    """The modality named by the nearest folder in ``parts`` (sub-folders of the import)."""
    for d in reversed(parts):
        found = MODALITY_ALIASES.get(d.lower())
        if found:
            return found
    return None


def _images(root: Path, images_dir: Path) -> list[Path]:
    stored = images_dir.resolve()

    def in_store(p: Path) -> bool:
        parent = p.parent.resolve()  # the folder only: a link is not followed outside
        return parent == stored or stored in parent.parents

    return sorted(
        p
        for p in root.rglob("*")
        if (p.is_symlink() or p.is_file())
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.suffix.lower() not in SKIP_SUFFIXES
        and p.name.upper() != "DICOMDIR"
        and not in_store(p)
    )


def _dicom_modality(path: Path) -> str | None:
    """The canonical modality of a DICOM file's Modality tag (header only), or None."""
    from core.cases.images import ImageError, is_dicom_file

    if not is_dicom_file(path):
        return None
    from core.cases.dicom import read_dataset

    try:
        ds = read_dataset(path, defer=True)
    except ImageError:
        return None
    return MODALITY_ALIASES.get(str(ds.get("Modality", "") or "").strip().lower())


def read_folder(
    root: Path,
    images_dir: Path,
    opts: ImportOptions,
    kt: KnowledgeTable,
    progress: Progress | None,
) -> ManifestResult:
    """Cases for the images of ``root`` described by its sidecar (see the module docstring)."""
    result = ManifestResult()
    sidecars = [root / n for n in SIDECAR_NAMES if (root / n).is_file()]
    if len(sidecars) > 1:
        names = " and ".join(p.name for p in sidecars)
        result.errors.append(
            RowError(str(root), 0, f"both {names}: keep one sidecar manifest; nothing imported")
        )
        return result
    sidecar = sidecars[0] if sidecars else root / SIDECAR_NAMES[0]
    rows: list[RawRow] = []
    if sidecars:
        rows, file_errors = parse_manifest(sidecar, required=("image", "finding", "treatment"))
        result.errors.extend(RowError(str(sidecar), line, msg) for line, msg in file_errors)
    else:
        result.errors.append(
            RowError(
                str(root),
                0,
                f"no {SIDECAR_NAMES[0]} in the folder: write one with the columns image, finding and "
                "treatment (modality too, where no folder names it); see docs/cases.md",
            )
        )
    named: set[Path | str] = set()  # real paths, and the paths as written (for links out)
    ready = [_with_modality(row, root, sidecar, named) for row in rows]
    read_rows(
        sidecar, ready, root, images_dir, replace(opts, images_root=root), kt, progress, result
    )
    for p in _images(root, images_dir):
        rel = p.relative_to(root)
        if rel.as_posix() in named:
            continue  # its row reported it
        try:
            real = resolve_inside(root, rel)
        except OutsideRoot:
            result.errors.append(
                RowError(str(p), 0, f"a link that leads outside {root}; not opened, not imported")
            )
            continue
        if real in named:
            continue
        want = [f"a row for {rel.as_posix()} in {sidecar.name} with its finding and treatment"]
        if folder_modality(rel.parts[:-1]) is None:
            want.append(f"its modality (a modality column, or {_FOLDERS_HINT})")
        result.errors.append(RowError(str(p), 0, "not imported: add " + " and ".join(want)))
    return result


def _with_modality(row: RawRow, root: Path, sidecar: Path, named: set[Path | str]) -> RawRow:
    """``row`` with the modality its folders give, where the row has none; records its image."""
    image = row.values.get("image")
    if row.problems or not isinstance(image, str) or not image.strip():
        return row
    named.add(PurePath(image.strip()).as_posix())
    try:
        real: Path | None = resolve_inside(root, image.strip())
    except OutsideRoot:
        real = None  # read_rows reports it; the folders as written still give the modality
    if real is not None:
        named.add(real)
        parts = real.relative_to(root.resolve()).parts[:-1]
    else:
        parts = PurePath(image.strip()).parts[:-1]
    from_folder = folder_modality(parts)
    stated = row.values.get("modality")
    if isinstance(stated, str) and stated.strip():
        canon = MODALITY_ALIASES.get(stated.strip().lower())
        if from_folder and canon and canon != from_folder:
            problem = (
                f"modality {stated.strip()!r} in {sidecar.name}, but the image is in a folder "
                f"that says {from_folder}; make them agree"
            )
            return RawRow(row.line, row.values, row.typed, (problem,))
        return row
    modality = from_folder or (
        _dicom_modality(real) if real is not None and real.is_file() else None
    )
    if modality is None:
        problem = f"cannot tell the modality of {image.strip()}: add a modality column or put it in {_FOLDERS_HINT}"
        return RawRow(row.line, row.values, row.typed, (problem,))
    return RawRow(row.line, {**row.values, "modality": modality}, row.typed)
