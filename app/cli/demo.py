"""``medreview demo create``: a working workspace from nothing, with no network and no GPU.

Generates the synthetic demo benchmark (phantom images in four modalities, three kinds of
scenario, train/val/test splits), stores the cases, stores the text heuristic's verdicts, trains the
two tiny demo models briefly on the train split, registers them and stores their verdicts on every
case, so the review queue has an A and a B for each case from the first start.

``demo create --quick`` is the app's first run: instead of the two demo models (minutes on a
laptop CPU) it trains one quick text-only model (``demo-quick``, a few seconds) so the queue has
an A and a B within a minute, and leaves a note (``demo_models_pending.json``) that the full demo
models are still to be made. ``demo models`` makes them in the workspace (the app runs it in the
background while the clinician reviews) and removes the note; run again after a cancel, it goes
on from what was finished (a registered model is not trained again).
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
    add_numerics,
    cancel_on_sigterm,
    progress_for,
    quiet_ml_libraries,
    workspace,
)
from app.workspace import Workspace
from core.runtime.progress import Canceled, ProgressEvent

if TYPE_CHECKING:
    from core.cases.records import Case
    from core.runtime.progress import Progress
    from feedback_db import Store

# The demo's names and plans live in app/demo_plan.py, which the window reads without importing
# this verb (and so without the ML stack that the verb imports lazily).
from app.demo_plan import (  # noqa: E402, F401 (re-exported)
    FULL_PLAN,
    FULL_VERSIONS,
    MODELS_PLAN,
    PENDING_NAME,
    QUICK_LM_STEPS,
    QUICK_PLAN,
    QUICK_VERSION,
    pending_models,
)


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
    c.add_argument(
        "--quick",
        action="store_true",
        help=f"train only a quick text model ({QUICK_VERSION}) and leave the two demo models to "
        "`medreview demo models` (the app's first run: reviewable within a minute)",
    )
    add_numerics(c)
    c.set_defaults(func=create)
    m = demo_sub.add_parser(
        "models",
        help="train the full demo models in a demo workspace made with --quick",
        description=(
            "Train the two demo models (demo-v1 text only, demo-v2 image and text) on the demo "
            "workspace's train split, register them, store their verdicts on every case and make "
            "demo-v2 the active version. Goes on from a canceled run; does nothing when done."
        ),
    )
    add_common(m, progress=True)
    m.add_argument(
        "--device",
        default=None,
        choices=("auto", "cuda", "mps", "cpu"),
        help="device for the demo models (default: the one demo create was given, else cpu)",
    )
    add_numerics(m, "what demo create was given, else portable")
    m.set_defaults(func=models, numerics_default=_pending_numerics)


def create(args: argparse.Namespace) -> int:
    quiet_ml_libraries()
    from feedback_db import open_store

    if args.cases < 1:
        raise CommandError("--cases must be at least 1")
    from core.demo.scenarios import MIN_CASES_ALL_SPLITS

    if args.cases < MIN_CASES_ALL_SPLITS:
        print(
            f"note: with {args.cases} cases not every finding and scenario appears in every split "
            f"({MIN_CASES_ALL_SPLITS} or more covers them all)",
            file=sys.stderr,
        )
    target = workspace(args)
    # A new workspace is built beside its final place and moved in only when complete, so a
    # failed or cancelled run never leaves a half-made workspace that would open without models.
    # (A folder that already holds other files is built in place.)
    fresh = not target.exists() and (not target.root.exists() or not any(target.root.iterdir()))
    build = (
        Workspace(target.root.with_name(f".{target.root.name}.creating-{os.getpid()}"))
        if fresh
        else target
    )
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
    what = (
        "nothing was created" if fresh else "the workspace keeps what was added before the cancel"
    )
    if getattr(args, "progress", "none") == "json":
        print(ProgressEvent("canceled", 0, message=f"canceled; {what}").to_json(), flush=True)
    else:
        print(f"medreview demo create: canceled; {what}", file=sys.stderr)


def _build(args: argparse.Namespace, ws: Workspace) -> None:
    from app.convert import case_in_from_case
    from app.versions import store_verdicts
    from core.demo import generate_demo
    from core.models.backends.heuristic import HeuristicBackend
    from feedback_db import open_store

    if getattr(args, "quick", False) and not args.skip_models:
        _warm_imports()
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
            if getattr(args, "quick", False) and not args.skip_models:
                from core.demo.train_models import DemoTrainConfig

                quick = DemoTrainConfig(
                    lm_steps=QUICK_LM_STEPS,
                    eval_every=50,
                    text_only=True,
                    names=(QUICK_VERSION, f"{QUICK_VERSION}-image"),
                )
                _train_and_predict(ws, store, cases, args.device, progress, quick)
                _write_pending(ws, args)
            elif not args.skip_models:
                _train_and_predict(ws, store, cases, args.device, progress)
    finally:
        store.close()


def _warm_imports() -> None:
    """Import torch and transformers on a thread while the images are drawn (PNG encoding and
    numpy release the GIL), so the quick model's training starts seconds earlier on a 2-core
    machine. A failure here is left to the real import, which reports it."""
    import threading

    def work() -> None:
        try:
            import core.models.backends.clip_llm  # noqa: F401 (torch, transformers)
        except Exception:  # noqa: BLE001 (the real import below says what is wrong)
            return

    threading.Thread(target=work, name="warm-imports", daemon=True).start()


def _pending_numerics(args: argparse.Namespace) -> str | None:
    """The arithmetic ``demo create --quick`` was given, from its note, so ``demo models`` trains
    the full models the way the images were made (``None``: no readable note). Runs before the
    verb, so only json and the file system."""
    import json

    try:
        note = json.loads((workspace(args).root / PENDING_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    choice = note.get("numerics") if isinstance(note, dict) else None
    return choice if choice in ("portable", "native") else None


def _write_pending(ws: Workspace, args: argparse.Namespace) -> None:
    """The note that the full demo models are still to be trained (``demo models`` reads it)."""
    import json

    note = {
        "seed": args.seed,
        "cases": args.cases,
        "device": args.device,
        "numerics": args.numerics,
        "versions": list(FULL_VERSIONS),
    }
    (ws.root / PENDING_NAME).write_text(json.dumps(note, indent=2) + "\n", encoding="utf-8")


def _train_and_predict(
    ws: Workspace,
    store: Store,
    cases: list[Case],
    device: str,
    progress: Progress,
    config: object | None = None,
) -> None:
    """Train the demo versions of ``config`` (default: demo-v1 and demo-v2), store their verdicts
    on ``cases``; the last becomes the active version. A version already in the registry is not
    trained again, and one whose verdicts are all stored is skipped, so a canceled run goes on."""
    from app.versions import mirror_card, store_verdicts
    from core.demo.train_models import DemoTrainConfig, train_demo_models
    from core.models.registry import Registry, RegistryError

    cfg = config if isinstance(config, DemoTrainConfig) else DemoTrainConfig()
    names = cfg.names[:1] if cfg.text_only else cfg.names
    registry = Registry(ws.models_dir)
    try:
        cards = [registry.card(n) for n in names]
    except RegistryError:
        cards = train_demo_models(
            cases, ws.models_dir, progress, config=cfg, image_root=str(ws.root)
        )
    for i, card in enumerate(cards):
        last = i == len(cards) - 1
        stored = store.get_model_version(card.name) is not None
        if stored and len(store.predictions_for_version(card.name)) >= len(cases):
            mirror_card(store, card, active=last)
            continue
        backend = registry.load_backend(card.name, device=device, image_root=str(ws.root))
        verdicts = backend.predict(
            cases, batch_size=16, progress=progress, stage=f"predict: {card.name}"
        )
        mirror_card(store, card, active=last)
        store_verdicts(store, card.name, cases, verdicts)


def models(args: argparse.Namespace) -> int:
    """``demo models``: the full demo models for a workspace made with ``demo create --quick``."""
    import json

    quiet_ml_libraries()
    from core.cases.records import Case
    from core.demo.generator import MANIFEST_NAME
    from feedback_db import open_store

    ws = workspace(args)
    if not ws.exists():
        raise CommandError(
            f"no workspace at {ws.root}; create one with `medreview demo create --quick`"
        )
    manifest = ws.root / MANIFEST_NAME
    if not manifest.is_file():
        raise CommandError(f"{ws.root} is not a demo workspace (no {MANIFEST_NAME})")
    note: dict[str, object] = {}
    if pending_models(ws):
        try:
            note = json.loads((ws.root / PENDING_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            note = {}
    device = args.device or str(note.get("device") or "cpu")
    try:
        cases = [
            Case.from_dict(json.loads(line))
            for line in manifest.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise CommandError(f"{manifest}: cannot read the demo cases: {exc}") from exc
    t0 = time.monotonic()
    store = open_store(ws.db_url)
    try:
        with progress_for(args) as progress, cancel_on_sigterm(progress):
            _train_and_predict(ws, store, cases, device, progress)
    except Canceled:
        if getattr(args, "progress", "none") == "json":
            print(
                ProgressEvent(
                    "canceled", 0, message="canceled; the next start goes on from what was finished"
                ).to_json(),
                flush=True,
            )
        else:
            print("medreview demo models: canceled", file=sys.stderr)
        return EXIT_FAILED
    finally:
        store.close()
    (ws.root / PENDING_NAME).unlink(missing_ok=True)
    message = f"demo models ready in {time.monotonic() - t0:.0f} s: {', '.join(FULL_VERSIONS)}"
    if getattr(args, "progress", "none") == "json":
        print(ProgressEvent("done", 1, 1, message=message).to_json(), flush=True)
    print(f"medreview demo models: {message}", file=sys.stderr)
    return EXIT_OK


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
