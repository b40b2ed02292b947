"""``medreview train``: train a new model version from the clinicians' ratings.

    medreview train retrain [--parent VERSION] [--steps N] [--progress json] ...
    medreview train {encoder,sft,reward,ppo,dpo,grpo} [--parent VERSION] ...

``retrain`` is the one-click pipeline (SFT where there are gold answers, reward model, PPO,
evaluation on the val split, the safety gate against the active version, registration); ``rl``
is reward model + PPO; the other verbs run one stage through the same pipeline, so every verb ends
in an evaluated, registered version or in nothing at all. The verbs are the rows of the tables
``PIPELINES`` and ``STAGES`` (``core.training.retrain_config``), never listed here.

Every field of ``RetrainConfig`` and of its ``encoder``, ``sft``, ``reward`` and ``ppo`` sections is an option
(``--max-fpr``, ``--ppo-init-kl-coef``...), built from the dataclasses with their types, defaults
and help (``app.cli.config_args``); ``--config FILE`` (YAML, JSON or TOML) sets any of them, and
the options typed override the file (docs/training.md, "Command line").

What it learns from: the workspace's standing ratings, exported twice by one rule (TRL pairs and
the KTO file, which also holds ties), DICOM and TIFF images included (the image converter); each
rated case bound to the workspace's own case (its fields, never re-read from the prompt text);
ratings on val and test cases left out. Before training it says what it will learn from, and it
refuses below ``--min-judged`` judged cases or when nothing is new since the parent. The new
version is also run on the test cases, for the record (``medreview evaluate``, Compare); nothing
is decided on them.

This is the child process the GUI starts: with ``--progress json`` it prints one JSON object per
line on stdout (docs/architecture.md), and everything else the libraries print goes to stderr. SIGTERM asks
for a cancel, honoured at the next step. The last line says how it ended: stage ``done``,
``failed`` or ``canceled``, with a message. Exit 0 on success, 2 on failure or cancel.

The run holds a ``RunLease`` (app/runs.py) from start to end: the training run is recorded as
``running`` at once, every temporary file lives in the lease's folder (removed on success, failure
and cancel), and the new version's rows (version, verdicts on the held-out and review cases,
evaluation, the run's end) are written in ONE transaction after the registry moved the folder into
place. A kill at any instant is reconciled at the next start-up (the run closed as killed, an
orphan folder removed), so a failed, canceled or killed run leaves the previous version as it was.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    CommandError,
    add_common,
    cancel_on_sigterm,
    quiet_ml_libraries,
    workspace,
)
from core.runtime.progress import Canceled, Progress, ProgressEvent, json_lines

if TYPE_CHECKING:
    from app.workspace import Workspace
    from core.cases.records import Case

# Names scripts and docs used before the options came from the config's fields: kept working.
ALIASES = {"ppo.steps": ("--steps",), "min_judged_cases": ("--min-judged",)}
# RetrainConfig.batch_size (cases per model call when evaluating) gives up --batch-size, which
# has always meant PPO's rollouts per step (a shortcut below).
RENAME = {"batch_size": "--eval-batch-size"}


@dataclass(frozen=True)
class Shortcut:
    """An option that sets several fields at once (lower than an option of its own field)."""

    flag: str
    type: Callable[[str], Any]
    metavar: str
    help: str
    sets: Callable[[Any], dict[str, Any]]


SHORTCUTS = (
    Shortcut("--epochs", float, "E", "SFT, reward model and DPO epochs (sft.epochs and reward.epochs)",
             lambda e: {"sft.epochs": e, "reward.epochs": e}),
    Shortcut("--batch-size", int, "N",
             "PPO rollouts per step (ppo.batch_size; ppo.mini_batch_size is capped at it)",
             lambda n: {"ppo.batch_size": n, "ppo.mini_batch_size": ("cap", n)}),
    Shortcut("--seed", int, "N", "seed of SFT, the reward model and PPO (sft.seed, reward.seed, ppo.seed)",
             lambda n: {"sft.seed": n, "reward.seed": n, "ppo.seed": n}),
)  # fmt: skip


def subcommands() -> dict[str, tuple[tuple[str, ...], str]]:
    """``medreview train`` sub-commands: each pipeline, then each stage alone (the tables in
    core.training.retrain_config), as (stages, help)."""
    from core.training.retrain_config import PIPELINES, STAGES

    out = {name: (p.stages, p.summary) for name, p in PIPELINES.items()}
    out.update({name: ((name,), s.summary) for name, s in STAGES.items()})
    return out


def kind_defaults(stages: tuple[str, ...]) -> dict[str, Any]:
    """What a sub-command sets before the file and the options: its stages; SFT alone trains
    whatever the number of gold answers (``run_sft`` yes)."""
    return {"stages": stages, "run_sft": "yes" if stages == ("sft",) else "auto"}


class _Kinds(argparse._SubParsersAction):  # type: ignore[type-arg]
    """The sub-commands, each given its options only when it is the one parsed: about 70
    options each, built for seven sub-commands, would slow every ``medreview`` start."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        chosen = self._name_parser_map.get(values[0]) if values else None
        if chosen is not None:
            add_training_options(chosen, chosen.get_default("stages_of_kind"))
        super().__call__(parser, namespace, values, option_string)


def register(sub: argparse._SubParsersAction, verb: str, help_: str) -> None:
    p = sub.add_parser(verb, help=help_, description=__doc__.split("\n\n")[0])
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True, action=_Kinds)
    for kind, (stages, text) in subcommands().items():
        k = kinds.add_parser(
            kind,
            help=text,
            usage="%(prog)s [options]  (see --help: every training setting is an option)",
            description=f"{text}. Stages: {', '.join(stages)}. Every setting of the training "
            "config is an option below, and --config FILE sets any of them from a file.",
        )
        k.set_defaults(func=run, stages_of_kind=stages)


def add_training_options(k: argparse.ArgumentParser, stages: tuple[str, ...]) -> None:
    """The options of a ``train`` sub-command (once): the common ones, what to learn from, the
    shortcuts, and one per field of ``RetrainConfig`` and its sections, with ``--config``."""
    from app.cli.config_args import add_options
    from core.training.retrain_config import RetrainConfig

    if k.get_default("options_added"):
        return
    k.set_defaults(options_added=True)
    add_common(k, progress=True)
    k.add_argument(
        "--parent", metavar="VERSION", help="version to start from (default: the active one)"
    )
    k.add_argument(
        "--feedback",
        metavar="FILE",
        help="train on this expert_feedback.jsonl instead of exporting",
    )
    k.add_argument(
        "--ratings",
        metavar="FILE",
        help="with --feedback: the KTO file of the same ratings (ties included)",
    )
    k.add_argument("--reviewer", metavar="NAME", help="only this reviewer's ratings")
    shortcuts = k.add_argument_group("shortcuts (an option of the field itself wins)")
    for sc in SHORTCUTS:
        shortcuts.add_argument(
            sc.flag, type=sc.type, metavar=sc.metavar, help=sc.help, default=argparse.SUPPRESS,
            dest="shortcut." + sc.flag.removeprefix("--"),
        )  # fmt: skip
    add_options(
        k, RetrainConfig, rename=RENAME, aliases=ALIASES, shown_defaults=kind_defaults(stages)
    )


def config_values(args: argparse.Namespace) -> dict[str, Any]:
    """The values the command line asks for, by dotted key, lowest first: the sub-command's
    stages (SFT alone trains whatever the number of gold answers), the ``--config`` file, the
    shortcuts, the options of the fields themselves.

    Raises:
        CommandError: the config file cannot be read or names a key the config does not have.
    """
    from app.cli.config_args import ConfigFileError, read_config_file, typed_values
    from core.training.retrain_config import RetrainConfig

    stages = tuple(getattr(args, "stages_of_kind", None) or subcommands()[args.kind][0])
    values = kind_defaults(stages)
    if getattr(args, "config", None):
        try:
            values.update(read_config_file(args.config, RetrainConfig))
        except ConfigFileError as exc:
            raise CommandError(str(exc)) from exc
    caps: dict[str, int] = {}
    for sc in SHORTCUTS:
        given = getattr(args, "shortcut." + sc.flag.removeprefix("--"), None)
        if given is None:
            continue
        for key, value in sc.sets(given).items():
            if isinstance(value, tuple) and value[0] == "cap":
                caps[key] = value[1]
            else:
                values[key] = value
    typed = typed_values(args)
    values.update(typed)
    for key, cap in caps.items():
        if key not in typed:
            from core.training.ppo_config import PPOConfig

            values[key] = min(cap, values.get(key, PPOConfig.mini_batch_size))
    return values


def build_config(args: argparse.Namespace) -> Any:
    """The ``RetrainConfig`` the options ask for (see ``config_values`` for the order).

    Raises:
        CommandError: a bad config file; ValueError: a value the config refuses (in words).
    """
    from app.cli.config_args import build
    from core.training.retrain_config import RetrainConfig

    return build(RetrainConfig, config_values(args))


def _final(mode: str, out: Any, stage: str, message: str) -> None:
    if mode == "json":
        out.write(ProgressEvent(stage, 0, None, message=message).to_json() + "\n")
        out.flush()
    else:
        print(f"medreview train: {stage}: {message}", file=sys.stderr)


def _progress(mode: str, out: Any) -> Progress:
    if mode == "json":
        return json_lines(out)
    if mode == "bar":
        from app.cli.common import _Bar

        return Progress(_Bar())
    return Progress()


def run(args: argparse.Namespace) -> int:
    quiet_ml_libraries()
    try:
        cfg = build_config(args)  # a bad option or config file: said before anything is touched
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    ws = workspace(args)
    if not ws.exists():
        raise CommandError(f"no workspace at {ws.root}; create one with `medreview demo create`")
    mode = getattr(args, "progress", "none")
    real_stdout = sys.stdout
    progress = _progress(mode, real_stdout)
    from app.runs import reconcile

    try:
        reconcile(ws.ensure())
        # Library chatter goes to stderr: stdout carries only our JSON lines.
        with cancel_on_sigterm(progress), contextlib.redirect_stdout(sys.stderr):
            version, promoted, reason = _train(args, ws, cfg, progress)
    except Canceled:
        _final(
            mode,
            real_stdout,
            "canceled",
            "canceled; no version was made and the store is unchanged",
        )
        return EXIT_FAILED
    except CommandError as exc:
        _final(mode, real_stdout, "failed", str(exc))
        return EXIT_FAILED
    except Exception as exc:  # reported in words, with the type, as the last line
        _final(mode, real_stdout, "failed", f"{type(exc).__name__}: {exc}")
        return EXIT_FAILED
    state = "promoted to active" if promoted else "registered, not promoted"
    _final(mode, real_stdout, "done", f"version {version} {state}: {reason}")
    return EXIT_OK


def _cases(store: Any, split: str | None, root: Path) -> list[Case]:
    """The workspace's cases of ``split`` (all with None), image paths made absolute."""
    from app.convert import case_from_record

    ids = store.query_case_ids(split=split, order="id")
    out = []
    for rec in store.get_cases(ids):
        c = case_from_record(rec)
        image = c.image if Path(c.image).is_absolute() else str(root / c.image)
        out.append(replace(c, image=image))
    return out


@dataclass
class TrainingInputs:
    """What a retrain reads from the workspace: the two exports, every case (by split), the
    version to start from and the active one (the gate compares with it)."""

    parent: str
    active: str
    cases: list[Case]
    feedback: Path | None = None
    ratings: Path | None = None

    def split(self, name: str) -> list[Case]:
        return [c for c in self.cases if c.split == name]


def resolve_versions(args: argparse.Namespace, ws: Workspace, registry: Any) -> tuple[str, str]:
    """(parent, active): the version to start from (``--parent``, else the active one) and the
    one clinicians use (the gate compares with it); the parent is recorded in the store if it is
    only in the registry.

    Raises:
        CommandError: no active version and no ``--parent``, an unknown version, a store error.
    """
    from app.versions import mirror_card
    from core.models.registry import RegistryError
    from feedback_db import StoreError, open_store

    try:
        with open_store(ws.db_url) as store:
            active_row = store.active_version()
            parent = args.parent or (active_row.name if active_row is not None else None)
            if parent is None:
                raise CommandError("no active version; name one with --parent")
            if store.get_model_version(parent) is None:
                mirror_card(store, registry.card(parent))
    except (StoreError, RegistryError) as exc:
        raise CommandError(str(exc)) from exc
    return parent, active_row.name if active_row is not None else parent


def training_inputs(
    args: argparse.Namespace, ws: Workspace, work: Path, progress: Progress, registry: Any
) -> TrainingInputs:
    """The workspace's side of a retrain, before anything trains: parent and active version,
    every case, and the ratings exported into ``work`` (or the files ``--feedback`` names).

    Raises:
        CommandError: see ``resolve_versions``; a store error; no ratings.
    """
    from feedback_db import StoreError, open_store

    parent, active = resolve_versions(args, ws, registry)
    try:
        with open_store(ws.db_url) as store:
            cases = _cases(store, None, ws.root)
    except StoreError as exc:
        raise CommandError(str(exc)) from exc
    inputs = TrainingInputs(parent, active, cases)
    if args.feedback:
        inputs.feedback = Path(args.feedback)
        inputs.ratings = Path(args.ratings) if getattr(args, "ratings", None) else None
    else:
        inputs.feedback, inputs.ratings = _export(args, ws, work, progress)
    return inputs


def _train(
    args: argparse.Namespace, ws: Workspace, cfg: Any, progress: Progress
) -> tuple[str, bool, str]:
    from dataclasses import asdict

    from app.runs import RunLease
    from app.versions import recorded_card_hashes
    from core.models.registry import Registry, RegistryError
    from core.training.data import FeedbackFileError
    from core.training.retrain import RetrainError, default_name, is_main_process, retrain

    registry = Registry(
        ws.models_dir, card_hashes=recorded_card_hashes(ws)
    )  # a changed card is refused
    parent, _ = resolve_versions(args, ws, registry)  # an unknown version fails before the run
    args = argparse.Namespace(**{**vars(args), "parent": parent})
    cfg.name = cfg.name or default_name(parent)
    main = is_main_process()  # under `accelerate launch` the main process alone writes the store
    lease = RunLease(ws, args.kind, asdict(cfg), parent) if main else None
    with lease if lease is not None else contextlib.nullcontext():
        work = lease.work if lease is not None else ws.ensure().runs_dir
        inputs = training_inputs(args, ws, work, progress, registry)
        if lease is not None:
            lease.registering(cfg.name)  # before the registry renames it into models/
        try:
            res = retrain(
                registry, inputs.parent, inputs.feedback, inputs.split("val"), work, cfg,
                ratings=inputs.ratings, cases=inputs.cases, prompts=inputs.split("review"),
                report_cases=inputs.split("test"), active=inputs.active,
                image_root=str(ws.root), progress=progress,
            )  # fmt: skip
        except (RetrainError, RegistryError, FeedbackFileError) as exc:
            raise CommandError(str(exc)) from exc
        if lease is not None:
            _record(ws, registry, lease, res, progress)
    return res.card.name, res.gate.promote, res.gate.reason


def _export(
    args: argparse.Namespace, ws: Workspace, work: Path, progress: Progress
) -> tuple[Path, Path]:
    """The ratings as ``expert_feedback.jsonl`` (TRL pairs) and ``ratings_kto.jsonl`` (every
    rating, ties included) in the run's folder, DICOM and TIFF images included."""
    from core.cases.images import (
        to_png_bytes,  # DICOM/TIFF -> de-identified PNG, as `medreview export`
    )
    from feedback_db import StoreError, open_store
    from feedback_db.export import export_feedback

    feedback, ratings = work / "expert_feedback.jsonl", work / "ratings_kto.jsonl"
    progress.update("export", 0, None, message="exporting ratings")
    try:
        with open_store(ws.db_url) as store:
            results = [
                export_feedback(store, out, workspace_root=ws.root, fmt=fmt,
                                reviewer=args.reviewer, image_converter=to_png_bytes)
                for out, fmt in ((feedback, "trl"), (ratings, "kto"))
            ]  # fmt: skip
    except StoreError as exc:
        raise CommandError(str(exc)) from exc
    if results[1].rows == 0:
        raise CommandError("no ratings to train on; rate some cases first")
    for problem in dict.fromkeys(p for r in results for p in r.problems):
        progress.update("export", 0, None, message=f"left out: {problem}")
    return feedback, ratings


def _record(ws: Workspace, registry: Any, lease: Any, res: Any, progress: Progress) -> None:
    """The store's side, after the engine succeeded: the new version's verdicts on the review
    cases (so clinicians can rate the new pair at once), then version, verdicts, evaluation and
    the run's end in one transaction. On a failure the version folder is removed."""
    from app.convert import prediction_in_from_verdict
    from app.versions import base_model_text
    from core.models.registry import card_sha256
    from feedback_db import StoreError, open_store

    name = res.card.name
    try:
        with open_store(ws.db_url) as store:
            held = {h.case_id for h in res.heldout}
            review = [c for c in _cases(store, "review", ws.root) if c.case_id not in held]
        if review:
            backend = registry.load_backend(name, image_root=str(ws.root))
            progress.update(
                "predict-review", 0, len(review), message=f"{name} on {len(review)} review cases"
            )
            review_verdicts = backend.predict(review, progress=progress, stage="predict-review")
        else:
            review_verdicts = []
        cases = [*res.heldout, *review]
        verdicts = [*res.verdicts, *review_verdicts]
        predictions = [
            prediction_in_from_verdict(c.case_id, v) for c, v in zip(cases, verdicts, strict=True)
        ]
        card = res.card
        with open_store(ws.db_url) as store:
            store.record_trained_version(
                lease.run_id,
                {
                    "name": name,
                    "backend": card.backend,
                    "base_model": base_model_text(card.base_models),
                    "parent": card.parent,
                    "path": f"models/{name}",
                    "note": card.description or None,
                    "card_sha256": card_sha256(card),
                },
                predictions,
                res.metrics,
                promoted=res.gate.promote,
                reason=res.gate.reason,
            )
        lease.finished = True
    except Exception as exc:
        shutil.rmtree(registry.root / name, ignore_errors=True)
        lease.finish("failed", f"recording the version failed: {exc}")
        if isinstance(exc, StoreError | OSError):
            raise CommandError(f"recording the new version failed, version removed: {exc}") from exc
        raise
