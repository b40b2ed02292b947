"""``medreview predict``: run a model version over the workspace's cases or over a manifest.

    medreview predict --version NAME [--split test] [--missing] [--device auto] [--batch-size N] [--out FILE]
    medreview predict --version NAME --manifest FILE [--out FILE]

With the workspace, the cases come from the store and the verdicts are saved there as the
version's predictions (the version is mirrored into the store first if it is not there yet). With
``--manifest`` there is no store: the verdicts are written as JSON lines to ``--out`` or stdout.
``--missing`` predicts only the workspace cases the version has no verdict on yet (the app's
"Run model on these cases" after an import); with none missing it says so and exits 0.
The device and dtype are printed on stderr. Exit 0 when every case got a verdict, 1 when some cases
were left out (missing image, reported), 2 for a usage error or a failure that changed nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.common import EXIT_OK, EXIT_PARTIAL, CommandError, add_common, progress_for, workspace
from core.runtime.files import atomic_write

if TYPE_CHECKING:
    from core.cases.records import Case
    from core.clinical.verdicts import Verdict
    from core.models.backends.base import Backend


def register(sub: argparse._SubParsersAction, verb: str, help_: str) -> None:
    p = sub.add_parser(verb, help=help_, description=__doc__.split("\n\n")[0])
    add_common(p, progress=True)
    from core.models.backends import backend_names

    builtin = " or ".join(repr(n) for n in backend_names(needs_weights=False))
    p.add_argument(
        "--version",
        required=True,
        metavar="NAME",
        help=f"model version, or a back end that needs no weights ({builtin}), run as it is",
    )
    p.add_argument(
        "--split",
        choices=("train", "review", "val", "test", "all"),
        default="test",
        help="workspace cases of this split (default test)",
    )
    p.add_argument(
        "--manifest", metavar="FILE", help="predict on a manifest's cases, with no store"
    )
    p.add_argument(
        "--missing",
        action="store_true",
        help="only the workspace cases that have no verdict from this version yet",
    )
    p.add_argument("--out", metavar="FILE", help="write the verdicts as JSON lines to FILE")
    p.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cuda", "mps", "cpu"),
        help="where to run (default auto)",
    )
    p.add_argument(
        "--batch-size", type=int, default=8, metavar="N", help="cases per model call (default 8)"
    )
    p.set_defaults(func=run)


def _backend(args: argparse.Namespace, image_root: str | None) -> tuple[Backend, Any]:
    """The back end of ``--version`` and its registry card (None for a built-in back end: one
    of the table's that needs no weights, named by ``--version`` and not a registered version)."""
    from app.versions import recorded_card_hashes
    from core.models.backends import BACKENDS
    from core.models.hub import ModelNotAvailable
    from core.models.registry import Registry, RegistryError
    from core.runtime.devices import DeviceUnavailable

    ws = workspace(args)
    registry = Registry(
        ws.models_dir, card_hashes=recorded_card_hashes(ws)
    )  # a changed card is refused
    spec = BACKENDS.get(args.version)
    if spec is not None and not spec.needs_weights and not (registry.root / args.version).exists():
        return spec.load_class()(), None
    try:
        card = registry.card(args.version)
        return registry.load_backend(args.version, device=args.device, image_root=image_root), card
    except (RegistryError, ModelNotAvailable, DeviceUnavailable) as exc:
        raise CommandError(str(exc)) from exc


def _usable(cases: Sequence[Case], image_root: str | None) -> tuple[list[Case], list[str]]:
    """The cases whose image file exists, and a line for each that does not."""
    from core.models.backends._policy import resolve_image

    ok, bad = [], []
    for c in cases:
        if resolve_image(c.image, image_root).is_file():
            ok.append(c)
        else:
            bad.append(f"{c.case_id}: image not found: {c.image}")
    return ok, bad


def verdict_line(case: Case, v: Verdict) -> str:
    return json.dumps(
        {
            "case_id": case.case_id,
            "label": v.label.value,
            "reason": v.reason,
            "confidence": v.confidence,
            "latency_ms": None if v.latency_ms is None else round(v.latency_ms, 3),
            "text": v.text,
        }
    )


def run(args: argparse.Namespace) -> int:
    if args.batch_size <= 0:
        raise CommandError("--batch-size must be positive")
    ws = workspace(args)
    store = None
    scratch: tempfile.TemporaryDirectory[str] | None = None
    if args.manifest:
        from core.manifests.reader import read_manifest

        # The manifest's images are read (and de-identified) into a scratch folder, not the
        # workspace: predicting over a manifest changes nothing on disk but --out.
        scratch = tempfile.TemporaryDirectory(prefix="medreview-predict-")
        try:
            result = read_manifest(Path(args.manifest), Path(scratch.name) / "images")
        except (OSError, ValueError) as exc:
            scratch.cleanup()
            raise CommandError(f"{args.manifest}: {exc}") from exc
        for problem in result.errors:
            print(f"medreview predict: {problem}", file=sys.stderr)
        cases, rejected, image_root = list(result.cases), len(result.errors), scratch.name
    else:
        from app.convert import case_from_record
        from feedback_db import StoreError, open_store

        if not ws.exists():
            raise CommandError(
                f"no workspace at {ws.root}; create one with `medreview demo create`"
            )
        try:
            store = open_store(ws.db_url)
            ids = store.query_case_ids(
                split=None if args.split == "all" else args.split, order="id"
            )
            if args.missing and store.get_model_version(args.version) is not None:
                have = store.predictions_for_version(args.version)
                done = set(have) if isinstance(have, dict) else {p.case_id for p in have}
                ids = [i for i in ids if i not in done]
            cases = [case_from_record(r) for r in store.get_cases(ids)]
        except StoreError as exc:
            if store is not None:
                store.close()
            raise CommandError(str(exc)) from exc
        rejected, image_root = 0, str(ws.root)
        if args.missing and not cases:
            store.close()
            print(
                f"medreview predict: every case already has a verdict from {args.version}",
                file=sys.stderr,
            )
            return EXIT_OK
    try:
        if not cases:
            raise CommandError("no cases to predict on")
        usable, bad = _usable(cases, image_root)
        for line in bad:
            print(f"medreview predict: {line}", file=sys.stderr)
        if not usable:
            raise CommandError("no case has a readable image; nothing predicted")
        backend, card = _backend(args, image_root)
        print(
            f"medreview predict: {args.version} ({backend.name}) on {backend.device} ({backend.dtype})",
            file=sys.stderr,
        )
        with progress_for(args) as progress:
            verdicts = backend.predict(usable, batch_size=args.batch_size, progress=progress)
        lines = [verdict_line(c, v) for c, v in zip(usable, verdicts, strict=True)]
        if args.out:
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(out, "".join(line + "\n" for line in lines), permissions=0o666)
        elif args.manifest:
            sys.stdout.write("".join(line + "\n" for line in lines))
        if store is not None:
            _save(store, args.version, card, ws, usable, verdicts)
        print(
            f"medreview predict: {len(verdicts)} verdicts ({len(bad) + rejected} cases left out)",
            file=sys.stderr,
        )
    finally:
        if store is not None:
            store.close()
        if scratch is not None:
            scratch.cleanup()
    return EXIT_PARTIAL if bad or rejected else EXIT_OK


def _save(
    store: Any, version: str, card: Any, ws: Any, cases: list[Case], verdicts: list[Verdict]
) -> None:
    from app.versions import mirror_card, store_verdicts
    from feedback_db import StoreError

    try:
        if card is not None:
            mirror_card(store, card)
        elif store.get_model_version(version) is None:
            from core.models.backends import BACKENDS

            spec = BACKENDS[version]  # a built-in back end, run under its own name
            store.add_model_version(version, spec.name, spec.source, note=spec.summary)
        store_verdicts(store, version, cases, verdicts)
    except StoreError as exc:
        raise CommandError(f"saving the verdicts: {exc}") from exc
