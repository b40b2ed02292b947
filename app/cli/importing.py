"""``medreview import PATH``: cases (a manifest or a folder of images) or ratings (a JSONL file).

A ``.jsonl`` whose first valid line has ``chosen`` and ``rejected`` is ``expert_feedback.jsonl``
from another workstation: its ratings are imported (feedback_db.import_jsonl). Anything else is a
case manifest (CSV, JSON, JSONL) or a folder of images with a sidecar ``cases.csv``, read by
core.manifests.manifest; the images are copied into the workspace by content hash (DICOM de-identified),
and only for the cases that are imported. Manifest images must lie inside the images root (the
manifest's folder, or ``--images-root``).

Exit 0 when everything was imported, 1 when some rows were rejected (each printed on stderr as
``file:line: message``), 2 for a usage error or when nothing was imported.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PARTIAL,
    CommandError,
    add_common,
    progress_for,
    workspace,
)

if TYPE_CHECKING:
    from app.workspace import Workspace
    from core.manifests.manifest import ImportOptions


def register(sub: argparse._SubParsersAction, verb: str, help_: str) -> None:
    p = sub.add_parser(verb, help=help_, description=__doc__.split("\n\n")[0] if __doc__ else help_)
    add_common(p, progress=True)
    p.add_argument(
        "path",
        metavar="MANIFEST_OR_FOLDER",
        help="a case manifest, a folder of images, or expert_feedback.jsonl",
    )
    p.add_argument(
        "--skip-existing",
        action="store_true",
        help="cases: skip case ids already in the workspace instead of refusing the import",
    )
    p.add_argument(
        "--create-reviewers",
        action="store_true",
        help="ratings: create reviewers this workspace does not know instead of rejecting their lines",
    )
    p.add_argument(
        "--reviewer-role",
        default="imported",
        metavar="ROLE",
        help="ratings: the role given to reviewers created by --create-reviewers",
    )
    p.add_argument(
        "--images-root",
        metavar="DIR",
        help="cases: the folder manifest images must lie in (default: the manifest's folder)",
    )
    p.add_argument(
        "--allow-burned-in",
        action="store_true",
        help="cases: import DICOM files that declare text burned into the pixels, flagged "
        "(export leaves them out until a clinician confirms they show no identifier)",
    )
    p.add_argument(
        "--max-megapixels",
        type=float,
        default=None,
        metavar="N",
        help="cases: refuse images above N megapixels before decoding them (default 64)",
    )
    p.set_defaults(func=run)


def _print_errors(errors: list[object]) -> None:
    for e in errors:
        print(str(e), file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from feedback_db.import_jsonl import looks_like_feedback

    path = Path(args.path).expanduser().resolve()
    if not path.exists():
        raise CommandError(f"{args.path}: no such file or folder")
    ws = workspace(args)
    if looks_like_feedback(path):
        return _ratings(args, ws, path)
    return _cases(args, ws, path)


def _ratings(args: argparse.Namespace, ws: Workspace, path: Path) -> int:
    from feedback_db import StoreError, open_store
    from feedback_db.import_jsonl import import_feedback

    try:
        store = open_store(ws.ensure().db_url)
        try:
            with progress_for(args) as progress:
                # Cases the workspace lacks are created from the lines, images copied in.
                result = import_feedback(
                    store,
                    path,
                    create_reviewers=args.create_reviewers,
                    reviewer_role=args.reviewer_role,
                    workspace_root=ws.root,
                    progress=progress,
                )
        finally:
            store.close()
    except StoreError as exc:
        raise CommandError(str(exc)) from exc
    _print_errors(list(result.errors))
    created = (
        f"; new reviewers: {', '.join(result.reviewers_created)}"
        if result.reviewers_created
        else ""
    )
    if result.cases_created:
        created += f"; {len(result.cases_created)} cases created from the file"
    print(
        f"imported {result.ratings} ratings from {path} ({result.skipped} already there, "
        f"{len(result.errors)} lines rejected){created}"
    )
    if result.errors:
        return EXIT_PARTIAL if result.ratings or result.skipped else EXIT_FAILED
    return EXIT_OK


def _options(args: argparse.Namespace) -> ImportOptions:
    from core.cases.images import DEFAULT_MAX_PIXELS
    from core.manifests.manifest import ImportOptions

    root = None
    if args.images_root:
        root = Path(args.images_root).expanduser()
        if not root.is_dir():
            raise CommandError(f"--images-root {args.images_root}: not a folder")
    mpx = args.max_megapixels
    if mpx is not None and not mpx > 0:
        raise CommandError(f"--max-megapixels must be above 0, got {mpx}")
    return ImportOptions(
        images_root=root.resolve() if root else None,
        allow_burned_in=args.allow_burned_in,
        max_pixels=int(mpx * 1e6) if mpx is not None else DEFAULT_MAX_PIXELS,
    )


def _remove_unused(ws: Workspace, new_images: list[str], kept: set[str]) -> None:
    """Delete images this import wrote for cases that did not go in (nothing copied for them)."""
    for rel in set(new_images) - kept:
        (ws.root / rel).unlink(missing_ok=True)


def _cases(args: argparse.Namespace, ws: Workspace, path: Path) -> int:
    try:
        from core.manifests.reader import read_manifest
    except ImportError as exc:
        raise CommandError(f"case manifests cannot be read in this version ({exc})") from exc
    from app.convert import case_in_from_case
    from feedback_db import StoreError, open_store

    options = _options(args)
    ws.ensure()
    with progress_for(args) as progress:
        result = read_manifest(path, ws.images_dir, progress=progress, options=options)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    _print_errors(list(result.errors))
    if not result.cases:
        _remove_unused(ws, result.new_images, set())
        print(
            f"no cases imported from {path} ({len(result.errors)} rows rejected)", file=sys.stderr
        )
        return EXIT_FAILED
    try:
        store = open_store(ws.db_url)
        try:
            known = {c.case_id for c in store.get_cases(c.case_id for c in result.cases)}
            fresh = [c for c in result.cases if c.case_id not in known]
            if known and not args.skip_existing:
                _remove_unused(ws, result.new_images, set())
                shown = ", ".join(sorted(known)[:5])
                raise CommandError(
                    f"{len(known)} case id(s) already in the workspace: {shown}; nothing "
                    "imported (use --skip-existing to import the new ones)"
                )
            # Images new to the workspace are used by this import's cases only.
            _remove_unused(ws, result.new_images, {c.image for c in fresh})
            added = store.add_cases(case_in_from_case(c) for c in fresh)
        finally:
            store.close()
    except StoreError as exc:
        raise CommandError(
            f"{exc}; nothing imported (use --skip-existing to import the new ones)"
        ) from exc
    skipped = len(result.cases) - added
    print(
        f"imported {added} cases from {path} into {ws.root}"
        + (f" ({skipped} already there)" if skipped else "")
        + (f"; {len(result.errors)} rows rejected" if result.errors else "")
    )
    burned = sum(1 for c in fresh if c.meta.get("burned_in"))
    if burned:
        print(
            f"note: {burned} case(s) declare text burned into the pixels; they are flagged, and export "
            "leaves them out until a clinician confirms the image shows no identifier",
            file=sys.stderr,
        )
    return EXIT_PARTIAL if result.errors else EXIT_OK
