"""``medreview export OUT.jsonl [--format trl|kto] [--reviewer NAME]``: ratings for training.

Writes the workspace's standing ratings as ``expert_feedback.jsonl`` (TRL conversational
preference pairs with images, or unpaired KTO rows) and the de-identified images it names into
``images/`` beside it (see feedback_db.export). Exit 0 when every rating was exported, 1 when some
rows were left out (each named on stderr), 2 for a usage error or a failure that wrote nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.cli.common import EXIT_OK, EXIT_PARTIAL, CommandError, add_common, progress_for, workspace


def register(sub: argparse._SubParsersAction, verb: str, help_: str) -> None:
    p = sub.add_parser(verb, help=help_, description=__doc__.split("\n\n")[0] if __doc__ else help_)
    add_common(p, progress=True)
    p.add_argument(
        "out", metavar="OUT.jsonl", help="the file to write; images go to images/ beside it"
    )
    p.add_argument(
        "--format",
        choices=("trl", "kto"),
        default="trl",
        help="trl: preference pairs (RewardTrainer, DPOTrainer); kto: unpaired rows (KTOTrainer)",
    )
    p.add_argument("--reviewer", metavar="NAME", help="only this reviewer's ratings")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.cases.images import to_png_bytes  # DICOM/TIFF -> de-identified PNG (pixels only)
    from feedback_db import StoreError, open_store
    from feedback_db.export import export_feedback

    ws = workspace(args)
    if not ws.exists():
        raise CommandError(
            f"no workspace at {ws.root} (create one with `medreview demo create` or `medreview import`)"
        )
    out = Path(args.out).expanduser().resolve()
    if out.suffix.lower() != ".jsonl":
        raise CommandError(f"{args.out}: the output must be a .jsonl file")
    try:
        store = open_store(
            ws.db_url, read_only=ws.read_only
        )  # a read-only workspace exports elsewhere
    except StoreError as exc:
        raise CommandError(str(exc)) from exc
    try:
        with progress_for(args) as progress:
            result = export_feedback(
                store,
                out,
                workspace_root=ws.root,
                fmt=args.format,
                reviewer=args.reviewer,
                image_converter=to_png_bytes,
                progress=progress,
            )
    except (StoreError, ValueError, OSError) as exc:
        raise CommandError(str(exc)) from exc
    finally:
        store.close()
    for problem in result.problems:
        print(f"left out: {problem}", file=sys.stderr)
    kind = "pairs" if result.format == "trl" else "rows"
    print(
        f"wrote {result.rows} {kind} from {result.ratings} ratings to {result.path} "
        f"({result.images_written} new images in {result.path.parent / 'images'})"
    )
    if result.rows == 0 and not result.problems:
        print("no standing ratings with a preference to export yet", file=sys.stderr)
    return EXIT_PARTIAL if result.problems else EXIT_OK
