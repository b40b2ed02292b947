"""``medreview evaluate``: score a model version's verdicts against the ground truth.

    medreview evaluate --version NAME [--split test] [--json OUT] [--png OUT]
    medreview evaluate --manifest FILE --backend heuristic [--json OUT] [--png OUT]

With ``--version`` the cases and that version's latest predictions come from the workspace's
store. The name ``heuristic`` needs no stored predictions: when the store has none, the text
heuristic runs on the cases there and then (it takes milliseconds). With ``--manifest`` there is no
store at all: the cases come from the manifest and the back end runs on them.

Read-only: nothing is written to the store (the retrain step records its own evaluations).
Exit 0 when every case was scored, 1 when some cases had no prediction (they are reported and
left out), 2 for a usage error or nothing to score.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.common import EXIT_OK, EXIT_PARTIAL, CommandError, add_common, workspace
from core.cases.records import Case
from core.runtime.files import atomic_write

if TYPE_CHECKING:
    from core.clinical.knowledge import KnowledgeTable
    from core.clinical.verdicts import Verdict
    from feedback_db import Store

HEURISTIC = "heuristic"
SPLITS = ("train", "review", "val", "test", "all")


@dataclass(frozen=True)
class VerdictSet:
    """One version's verdicts by case id, and where they came from (``store`` or ``run now``)."""

    version: str
    source: str
    verdicts: dict[str, Verdict]


def add_split_and_outputs(p: argparse.ArgumentParser) -> None:
    """The options ``evaluate`` and ``compare`` share."""
    p.add_argument(
        "--split",
        choices=SPLITS,
        default="test",
        help="which cases: the held-out test split (default), train, val, or all",
    )
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    p.add_argument("--png", metavar="OUT", help="also draw the per-modality heatmap to OUT (PNG)")
    p.add_argument(
        "--knowledge",
        metavar="FILE",
        help="knowledge table for the heuristic (default: the shipped resources/knowledge.json)",
    )


def register(sub: argparse._SubParsersAction, verb: str, help_: str) -> None:
    p = sub.add_parser(verb, help=help_, description=__doc__.split("\n\n")[0] if __doc__ else help_)
    add_common(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--version", metavar="NAME", help="a model version of the workspace, or 'heuristic'"
    )
    src.add_argument("--manifest", metavar="FILE", help="evaluate over a manifest, with no store")
    p.add_argument(
        "--backend",
        choices=(HEURISTIC,),
        default=None,
        help="with --manifest: the back end to run on its cases (heuristic)",
    )
    add_split_and_outputs(p)
    p.set_defaults(func=run)


# -- loading --------------------------------------------------------------------------------------
def open_workspace_store(args: argparse.Namespace) -> Store:
    """The workspace's store, opened without creating a new workspace.

    Raises:
        CommandError: no workspace there, or the store cannot be opened.
    """
    from feedback_db import StoreError, open_store

    ws = workspace(args)
    if not ws.exists():
        raise CommandError(
            f"no workspace at {ws.root}; create one with `medreview demo create` or pass --workspace"
        )
    try:
        return open_store(ws.db_url)
    except StoreError as exc:
        raise CommandError(str(exc)) from exc


def load_cases(store: Store, split: str) -> list[Case]:
    """The store's cases of ``split`` (``all`` for every split), ordered by id."""
    from app.convert import case_from_record

    ids = store.query_case_ids(split=None if split == "all" else split, order="id")
    return [case_from_record(r) for r in store.get_cases(ids)]


def _knowledge_table(path: str | None) -> KnowledgeTable | None:
    """The table at ``path`` (None: the shipped one). Raises CommandError naming file and field."""
    from core.clinical.knowledge import KnowledgeError, load_knowledge

    try:
        return load_knowledge(path) if path else None
    except KnowledgeError as exc:
        raise CommandError(str(exc)) from exc


def run_heuristic(cases: Sequence[Case], knowledge: str | None) -> dict[str, Verdict]:
    """Run the text heuristic on ``cases`` now.

    Raises:
        CommandError: the knowledge table cannot be read (the message names the file and field).
    """
    from core.models.backends.heuristic import HeuristicBackend

    verdicts = HeuristicBackend(_knowledge_table(knowledge)).predict(cases, batch_size=256)
    return {c.case_id: v for c, v in zip(cases, verdicts, strict=True)}


def load_verdict_set(
    store: Store, version: str, cases: Sequence[Case], split: str, knowledge: str | None = None
) -> VerdictSet:
    """``version``'s latest stored verdicts on ``cases``; the heuristic's, run now, if none stored.

    Raises:
        CommandError: unknown version, no predictions on the split, or a malformed stored label.
    """
    from app.convert import verdict_from_prediction

    registered = store.get_model_version(version)
    if registered is None and version != HEURISTIC:
        known = ", ".join(v.name for v in store.model_versions()) or "none"
        raise CommandError(f"unknown model version {version!r}; known: {known} (or 'heuristic')")
    preds = {}
    if registered is not None:
        preds = store.predictions_for_version(version, split=None if split == "all" else split)
    wanted = {c.case_id for c in cases}
    preds = {k: p for k, p in preds.items() if k in wanted}
    if not preds:
        if version == HEURISTIC:
            return VerdictSet(version, "run now", run_heuristic(cases, knowledge))
        raise CommandError(
            f"version {version!r} has no predictions on the {split} split; "
            f"run `medreview predict --version {version} --split {split}` first"
        )
    try:
        verdicts = {k: verdict_from_prediction(p) for k, p in preds.items()}
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    return VerdictSet(version, "store", verdicts)


def read_manifest_cases(path: str, knowledge: str | None) -> tuple[list[Case], int]:
    """The cases of a manifest and how many rows were rejected (each reported on stderr).

    The manifest reader checks every row and decodes every image, so a bad row is reported here
    just as ``medreview import`` would; the images are copied to a temporary folder that is
    removed afterwards, since nothing is stored.

    Raises:
        CommandError: no such file, no manifest reader in this version, or a bad knowledge table.
    """
    import tempfile

    try:
        from core.manifests.reader import read_manifest
    except ImportError as exc:
        raise CommandError(f"case manifests cannot be read in this version ({exc})") from exc
    p = Path(path)
    if not p.exists():
        raise CommandError(f"{path}: no such file or folder")
    table = _knowledge_table(knowledge)
    with tempfile.TemporaryDirectory(prefix="medreview-evaluate-") as tmp:
        result = read_manifest(p, Path(tmp) / "images", knowledge=table)
    for problem in result.errors:
        print(f"medreview evaluate: {problem}", file=sys.stderr)
    return list(result.cases), len(result.errors)


# -- output -----------------------------------------------------------------------------------------
def write_json(path: str, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON (NaN refused: the reports already turned it into null)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, json.dumps(data, indent=2, allow_nan=False) + "\n", permissions=0o666)


def report_missing(verb: str, name: str, missing: Sequence[str]) -> None:
    shown = ", ".join(missing[:10]) + (
        f", ... ({len(missing) - 10} more)" if len(missing) > 10 else ""
    )
    print(
        f"medreview {verb}: {len(missing)} case(s) have no prediction from {name!r} and were "
        f"left out: {shown}",
        file=sys.stderr,
    )


def run(args: argparse.Namespace) -> int:
    from core.evaluation import evaluate, format_breakdown, format_table, heatmap_png

    rejected = 0
    if args.manifest:
        if args.backend is None:
            raise CommandError("--manifest needs --backend (heuristic)")
        cases, rejected = read_manifest_cases(args.manifest, args.knowledge)
        if args.split != "all":
            # A manifest row without a split belongs to every split: it was given to be evaluated.
            cases = [c for c in cases if c.split in (None, args.split)]
        name, source = args.backend, f"{args.manifest}, run now"
        verdicts = run_heuristic(cases, args.knowledge)
    else:
        if args.backend is not None:
            raise CommandError("--backend goes with --manifest; with --version the version decides")
        store = open_workspace_store(args)
        try:
            cases = load_cases(store, args.split)
            if not cases:
                raise CommandError(f"the workspace has no cases in the {args.split} split")
            vs = load_verdict_set(store, args.version, cases, args.split, args.knowledge)
        finally:
            store.close()
        name, source, verdicts = vs.version, vs.source, vs.verdicts
    missing = [c.case_id for c in cases if c.case_id not in verdicts]
    scored = [c for c in cases if c.case_id in verdicts]
    if not scored:
        hint = "" if args.split == "all" else " (--split all takes every case)"
        raise CommandError(f"no cases to evaluate in the {args.split} split{hint}")
    if missing:
        report_missing("evaluate", name, missing)
    try:
        report = evaluate(scored, [verdicts[c.case_id] for c in scored])
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    print(f"{name} on the {args.split} split ({source}): {report.n} cases with ground truth")
    print(format_table([(name, report)]))
    print()
    print(format_breakdown(report))
    if args.json:
        doc = {"version": name, "split": args.split, "source": source, "missing": missing}
        write_json(args.json, {**doc, **report.to_dict()})
        print(f"\nWrote {args.json}")
    if args.png:
        heatmap_png(report, args.png, title=f"{name} on the {args.split} split")
        print(f"Wrote {args.png}")
    return EXIT_PARTIAL if (missing or rejected) else EXIT_OK
