"""``medreview models``: list the workspace's model versions, register a real model as one, or
choose the active one.

``models activate NAME`` puts a version into use by hand: the safety gate promotes a retrained
version only when it passes (docs/training.md), and an engineer who has looked at one it refused
(in Compare, with ``evaluate``) may still choose it; when the gate refused it, its reason is printed.

A version made by ``models add`` names its base models on its card: a Hugging Face id found in
the local cache stays there (the cache is content-addressed), and a folder is copied into the
version (hard links where the filesystem allows), so its files are hashed on the card and checked
at every load like any version's. ``predict``, ``evaluate`` and ``train retrain --parent NAME``
load them from there. Weights must be safetensors: a model whose only weights are pickles
(``pytorch_model.bin``...) is refused, and pickle files beside safetensors are not copied.
Nothing is downloaded: a model that is not on this machine is refused at once, with the command
that fetches it on a connected machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from app.cli.common import EXIT_OK, CommandError, add_common, workspace

_DESCRIPTION = __doc__.split("\n\n")[0].replace("``", "")


def register(sub: argparse._SubParsersAction, verb: str, help_: str) -> None:
    p = sub.add_parser(verb, help=help_, description=_DESCRIPTION)
    actions = p.add_subparsers(dest="models_verb", metavar="ACTION", required=True)

    ls = actions.add_parser(
        "list", help="list the model versions", description="List the workspace's model versions."
    )
    add_common(ls)
    ls.set_defaults(func=list_versions)

    add = actions.add_parser(
        "add",
        help="register a real model (HF cache id or folder) as a version",
        description=(
            "Register a real model as a version, with no download: the ids must be in the local "
            "Hugging Face cache (or be folders). Example: medreview models add medgemma "
            "--backend vlm --vlm google/medgemma-4b-it"
        ),
    )
    add_common(add)
    add.add_argument("name", help="the new version's name (letters, digits, . _ -)")
    # The back ends and their base model options come from the one table (core.models.backends).
    from core.models.backends import BACKENDS, backend_names, base_model_slots

    loading = backend_names(needs_weights=True)
    add.add_argument(
        "--backend",
        choices=loading,
        required=True,
        help="which back end runs it: " + "; ".join(f"{n}: {BACKENDS[n].summary}" for n in loading),
    )
    for key, slot in base_model_slots().items():
        users = ", ".join(n for n in loading if BACKENDS[n].slot(key) is not None)
        add.add_argument(
            f"--{key}",
            metavar="ID_OR_FOLDER",
            help=f"{users}: the {slot.label} (default: the back end's)",
        )
    add.add_argument(
        "--no-image", action="store_true", help="clip-llm: text only, no image description"
    )
    from core.models.backends._policy import DECODING_HELP, DECODINGS

    add.add_argument("--decoding", choices=DECODINGS, default="greedy", help=DECODING_HELP)
    add.add_argument("--activate", action="store_true", help="make it the active version")
    add.set_defaults(func=add_version)

    act = actions.add_parser(
        "activate",
        help="make a version the active one (the one clinicians review and predict with)",
        description=(
            "Make NAME the active version, whatever the safety gate said of it (when it "
            "refused it, its reason is printed). Example: medreview models activate retrain-3"
        ),
    )
    add_common(act)
    act.add_argument("name", help="the version to make active (see `medreview models list`)")
    act.set_defaults(func=activate_version)


def list_versions(args: argparse.Namespace) -> int:
    from feedback_db import open_store

    ws = workspace(args)
    if not ws.exists():
        raise CommandError(f"no workspace at {ws.root}; create one with `medreview demo create`")
    store = open_store(ws.db_url)
    try:
        versions = store.model_versions()
    finally:
        store.close()
    if not versions:
        print("no model versions yet")
    for v in versions:
        mark = "*" if v.active else " "
        print(f"{mark} {v.name:<32} {v.backend:<10} parent={v.parent or '-':<24} {v.base_model}")
    return EXIT_OK


def activate_version(args: argparse.Namespace) -> int:
    from feedback_db import open_store

    ws = workspace(args)
    if not ws.exists():
        raise CommandError(f"no workspace at {ws.root}; create one with `medreview demo create`")
    store = open_store(ws.db_url)
    try:
        version = store.get_model_version(args.name)
        if version is None:
            names = ", ".join(v.name for v in store.model_versions()) or "none yet"
            raise CommandError(f"no model version {args.name!r} in {ws.root} (versions: {names})")
        if version.path is not None and not (ws.root / version.path).is_dir():
            raise CommandError(
                f"model version {args.name!r} has no folder at {ws.root / version.path}; "
                "it cannot be loaded, so it is not made active"
            )
        before = store.active_version()
        if before is not None and before.name == version.name:
            print(f"{version.name} is already the active version")
            return EXIT_OK
        store.set_active(version.name)
    finally:
        store.close()
    was = before.name if before is not None else "none"
    print(f"{version.name} is now the active version (before: {was})")
    if version.promoted is False:
        print(
            f"note: the safety gate did not promote it: {version.promotion_reason or 'no reason'}",
            file=sys.stderr,
        )
    return EXIT_OK


def _base_models(args: argparse.Namespace) -> tuple[dict[str, str], dict[str, object]]:
    """The base models (hub ids, or absolute folders) and settings, each checked to be on this
    machine with safetensors weights."""
    from core.models.backends import backend_spec
    from core.models.hub import resolve_model
    from core.models.registry import check_weights

    def local(ref: str) -> str:
        p = Path(ref).expanduser()
        return str(p.resolve()) if p.is_dir() else ref

    def checked(key: str, ref: str, config: str) -> str:
        check_weights(Path(resolve_model(ref, (config,))), f"base model {key!r}")
        return ref

    spec = backend_spec(args.backend)
    config_class = spec.load_config_class()
    base_models: dict[str, str] = {}
    settings: dict[str, object] = {}
    for slot in spec.base_models:
        if slot.used_if is not None:  # e.g. clip-llm's image description, off with --no-image
            settings[slot.used_if] = not args.no_image
            if args.no_image:
                continue
        ref = local(getattr(args, slot.key, None) or getattr(config_class, slot.field))
        slot.run_check(ref)
        base_models[slot.key] = checked(slot.key, ref, slot.marker)
    if getattr(args, "decoding", "greedy") != "greedy":
        settings["decoding"] = args.decoding
    return base_models, settings


def _copy_in(folder: Path, base_models: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Copy each base model that is a folder into ``folder/base/<key>`` (hard links where
    possible; pickle files left out) and name it there on the card; hub ids stay as they are.
    Returns the card's base models and the files left out."""
    from core.models.registry import PICKLE_SUFFIXES

    out, left_out = {}, []
    for key, ref in base_models.items():
        src = Path(ref)
        if not src.is_absolute() or not src.is_dir():
            out[key] = ref
            continue
        dest = folder / "base" / key
        for p in sorted(src.rglob("*")):
            if not p.is_file():
                continue
            rel = p.relative_to(src)
            if any(part.startswith(".") for part in rel.parts):
                continue  # caches and lock files of the tools that wrote the folder
            if p.suffix.lower() in PICKLE_SUFFIXES:
                left_out.append(f"{key}/{rel.as_posix()}")
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(p.resolve(), target)
            except OSError:
                shutil.copy2(p, target)
        out[key] = f"base/{key}"
    return out, left_out


def add_version(args: argparse.Namespace) -> int:
    from app.versions import mirror_card
    from core.models.hub import ModelNotAvailable
    from core.models.registry import Registry, RegistryError
    from feedback_db import open_store

    ws = workspace(args)
    if not ws.exists():
        raise CommandError(f"no workspace at {ws.root}; create one with `medreview demo create`")
    try:
        base_models, settings = _base_models(args)
    except (ModelNotAvailable, RegistryError) as exc:
        raise CommandError(str(exc)) from exc
    registry = Registry(ws.models_dir)
    store = open_store(ws.db_url)
    try:
        if store.get_model_version(args.name) is not None:
            raise CommandError(f"model version {args.name!r} already exists")
        folder = Path(tempfile.mkdtemp(prefix=f".{args.name}-", dir=ws.ensure().runs_dir))
        try:
            card_models, left_out = _copy_in(folder, base_models)
            card = registry.create_version(
                args.name,
                args.backend,
                card_models,
                from_folder=folder,
                settings=settings,
                description=f"{args.backend}: "
                + ", ".join(f"{k}={v}" for k, v in base_models.items()),
            )
        except RegistryError as exc:
            raise CommandError(str(exc)) from exc
        except OSError as exc:
            raise CommandError(f"cannot copy the model into the version: {exc}") from exc
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        mirror_card(store, card, active=args.activate)
    finally:
        store.close()
    if left_out:
        print(
            f"note: pickle files not copied (safetensors are used): {', '.join(left_out[:5])}",
            file=sys.stderr,
        )
    print(f"registered {card.name}: {card.description}", file=sys.stderr)
    return EXIT_OK
