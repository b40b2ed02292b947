"""``medreview demo create``: a working workspace from nothing, with no network and no GPU.

Generates the synthetic demo benchmark (phantom images in four modalities, three kinds of
scenario, train/val/test splits), stores the cases, stores the text heuristic's verdicts, trains the
two tiny demo models briefly on the train split, registers them and stores their verdicts on every
case, so the review queue has an A and a B for each case from the first start.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from typing import TYPE_CHECKING

from app.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    CommandError,
    add_common,
    cancel_on_sigterm,
    progress_for,
    quiet_ml_libraries,
    workspace,
)
from app.workspace import Workspace
from core.progress import Canceled, ProgressEvent

if TYPE_CHECKING:
    from core.cases import Case
    from core.progress import Progress
    from feedback_db import Store


def register(sub: argparse._SubParsersAction, verb: str, help_: str) -> None:
    p = sub.add_parser(verb, help=help_, description=__doc__.split("\n\n")[1])
    demo_sub = p.add_subparsers(dest="demo_verb", metavar="ACTION", required=True)
    c = demo_sub.add_parser(
        "create",
        help="create the demo workspace",
        description=(
            "Create the demo workspace: synthetic cases and images, the heuristic's verdicts, two "
            "tiny demo models trained on the train split, and their verdicts on every case."
        ),
    )
    add_common(c, progress=True)
    c.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed; the same seed gives the same cases (default 0)",
    )
    c.add_argument(
        "--cases", type=int, default=600, metavar="N", help="number of cases (default 600)"
    )
    c.add_argument(
        "--skip-models",
        action="store_true",
        help="do not train the demo models (only the heuristic's verdicts are stored)",
    )
    c.add_argument(
        "--device",
        default="cpu",
        choices=("auto", "cuda", "mps", "cpu"),
        help="device for the demo models (default cpu)",
    )
    c.add_argument(
        "--force", action="store_true", help="add to a workspace that already holds cases"
    )
    c.set_defaults(func=create)


def create(args: argparse.Namespace) -> int:
    quiet_ml_libraries()
    from feedback_db import open_store

    if args.cases < 1:
        raise CommandError("--cases must be at least 1")
    if args.cases < 140:
        print(
            f"note: with {args.cases} cases not every finding and scenario appears in every split "
            "(140 or more covers them all)",
            file=sys.stderr,
        )
    target = workspace(args)
    # A new workspace is built beside its final place and moved in only when complete, so a
    # failed or cancelled run never leaves a half-made workspace that would open without models.
    # (A folder that already holds other files is built in place.)
    fresh = not target.exists() and (not target.root.exists() or not any(target.root.iterdir()))
    build = Workspace(target.root.with_name(f".{target.root.name}.creating-{os.getpid()}")) if fresh else target
    t0 = time.monotonic()
    try:
        _build(args, build.ensure())
        if fresh:
            if target.root.is_dir():
                target.root.rmdir()
            os.replace(build.root, target.root)
    except BaseException as exc:
        if fresh:
            shutil.rmtree(build.root, ignore_errors=True)
        if isinstance(exc, Canceled):
            _say_canceled(args, fresh)
            return EXIT_FAILED
        raise
    with open_store(target.db_url) as store:
        _summary(store, target, time.monotonic() - t0)
    return EXIT_OK


def _say_canceled(args: argparse.Namespace, fresh: bool) -> None:
    what = "nothing was created" if fresh else "the workspace keeps what was added before the cancel"
    if getattr(args, "progress", "none") == "json":
        print(ProgressEvent("canceled", 0, message=f"canceled; {what}").to_json(), flush=True)
    else:
        print(f"medreview demo create: canceled; {what}", file=sys.stderr)


def _build(args: argparse.Namespace, ws: Workspace) -> None:
    from app.convert import case_in_from_case
    from app.versions import store_verdicts
    from core.backends.heuristic import HeuristicBackend
    from core.demo import generate_demo
    from feedback_db import open_store

    store = open_store(ws.db_url)
    try:
        if store.info().counts.get("cases", 0) and not args.force:
            raise CommandError(
                f"{ws.root} already holds cases; use another --workspace, or --force to add to it"
            )
        with progress_for(args) as progress, cancel_on_sigterm(progress):
            cases = generate_demo(ws.root, seed=args.seed, n_cases=args.cases, progress=progress)
            store.add_cases(case_in_from_case(c) for c in cases)
            heuristic = HeuristicBackend()
            if store.get_model_version("heuristic") is None:
                store.add_model_version(
                    "heuristic",
                    "heuristic",
                    "resources/knowledge.json",
                    note="text-only knowledge-table rules",
                )
            store_verdicts(
                store,
                "heuristic",
                cases,
                heuristic.predict(
                    cases, batch_size=256, progress=progress, stage="predict: heuristic"
                ),
            )
            if not args.skip_models:
                _train_and_predict(ws, store, cases, args.device, progress)
    finally:
        store.close()


def _train_and_predict(
    ws: Workspace, store: Store, cases: list[Case], device: str, progress: Progress
) -> None:
    from app.versions import mirror_card, store_verdicts
    from core.models.demo_train import train_demo_models
    from core.registry import Registry

    cards = train_demo_models(cases, ws.models_dir, progress, image_root=str(ws.root))
    registry = Registry(ws.models_dir)
    for i, card in enumerate(cards):
        backend = registry.load_backend(card.name, device=device, image_root=str(ws.root))
        verdicts = backend.predict(
            cases, batch_size=16, progress=progress, stage=f"predict: {card.name}"
        )
        mirror_card(store, card, active=(i == len(cards) - 1))
        store_verdicts(store, card.name, cases, verdicts)


def _summary(store: Store, ws: Workspace, seconds: float) -> None:
    info = store.info()
    versions = ", ".join(v.name for v in store.model_versions()) or "none"
    print(
        f"Demo workspace ready in {seconds:.1f} s: {ws.root}\n"
        f"  cases: {info.counts.get('cases', 0)}, predictions: {info.counts.get('predictions', 0)}\n"
        f"  model versions: {versions}\n"
        f"Open it with: medreview --workspace {ws.root}",
        file=sys.stderr,
    )
