"""``medreview train``: train a new model version from the clinicians' ratings.

    medreview train retrain [--parent VERSION] [--steps N] [--progress json] ...
    medreview train {sft,reward,ppo,dpo,grpo} [--parent VERSION] ...

``retrain`` is the one-click pipeline (SFT where there are gold answers, reward model, PPO,
evaluation on the val split, the safety gate against the active version, registration); ``rl``
is reward model + PPO; the other verbs run one stage through the same pipeline, so every verb ends
in an evaluated, registered version or in nothing at all.

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

STAGES = {
    "retrain": ("sft", "reward", "ppo"),
    "rl": ("reward", "ppo"),
    "sft": ("sft",),
    "reward": ("reward",),
    "ppo": ("ppo",),
    "dpo": ("dpo",),
    "grpo": ("grpo",),
}
HELP = {
    "retrain": "the one-click pipeline: SFT (gold answers), reward model, PPO, evaluate, register",
    "rl": "reward model and PPO (no SFT), evaluate, register",
    "sft": "LoRA supervised fine-tuning on the answers clinicians confirmed or wrote",
    "reward": "train a reward model on the preference pairs (pairwise accuracy on held-out pairs)",
    "ppo": "PPO with the parent's reward model (if any) and the clinical reward",
    "dpo": "direct preference optimization (TRL DPOTrainer) on the preference pairs",
    "grpo": "group relative policy optimization (TRL GRPOTrainer), clinical + learned reward",
}


def register(sub: argparse._SubParsersAction, verb: str, help_: str) -> None:
    p = sub.add_parser(verb, help=help_, description=__doc__.split("\n\n")[0])
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, text in HELP.items():
        k = kinds.add_parser(kind, help=text, description=text)
        add_common(k, progress=True)
        k.add_argument(
            "--parent", metavar="VERSION", help="version to start from (default: the active one)"
        )
        k.add_argument("--name", metavar="NAME", help="name of the new version")
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
        k.add_argument(
            "--min-judged",
            type=int,
            metavar="N",
            help="clinician-judged cases needed before training starts (default 20)",
        )
        k.add_argument("--device", default="auto", choices=("auto", "cuda", "mps", "cpu"))
        k.add_argument("--steps", type=int, metavar="N", help="PPO/GRPO steps (default 20)")
        k.add_argument("--epochs", type=float, metavar="E", help="SFT, reward and DPO epochs")
        k.add_argument("--batch-size", type=int, metavar="N", help="PPO rollouts per step")
        k.add_argument(
            "--max-fpr", type=float, default=0.10, help="safety gate FPR limit (default 0.10)"
        )
        k.add_argument("--seed", type=int, default=0)
        k.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> Any:
    """The ``RetrainConfig`` the options ask for."""
    from core.training.retrain_config import RetrainConfig

    cfg = RetrainConfig(
        name=args.name,
        device=args.device,
        stages=STAGES[args.kind],
        run_sft="yes" if args.kind == "sft" else "auto",
        max_fpr=args.max_fpr,
        **({"min_judged_cases": args.min_judged} if getattr(args, "min_judged", None) else {}),
    )
    cfg.ppo = replace(
        cfg.ppo,
        seed=args.seed,
        **({"steps": args.steps} if args.steps else {}),
        **({"batch_size": args.batch_size, "mini_batch_size": min(args.batch_size, cfg.ppo.mini_batch_size)}
           if args.batch_size else {}),
    )  # fmt: skip
    if args.epochs:
        cfg.sft = replace(cfg.sft, epochs=args.epochs)
        cfg.reward = replace(cfg.reward, epochs=args.epochs)
    cfg.sft = replace(cfg.sft, seed=args.seed)
    cfg.reward = replace(cfg.reward, seed=args.seed)
    return cfg


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
    ws = workspace(args)
    if not ws.exists():
        raise CommandError(f"no workspace at {ws.root}; create one with `medreview demo create`")
    mode = getattr(args, "progress", "none")
    real_stdout = sys.stdout
    progress = _progress(mode, real_stdout)
    try:
        cfg = build_config(args)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
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

    registry = Registry(ws.models_dir, card_hashes=recorded_card_hashes(ws))  # a changed card is refused
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
            progress.update("predict-review", 0, len(review), message=f"{name} on {len(review)} review cases")
            review_verdicts = backend.predict(review, progress=progress, stage="predict-review")
        else:
            review_verdicts = []
        cases = [*res.heldout, *review]
        verdicts = [*res.verdicts, *review_verdicts]
        predictions = [prediction_in_from_verdict(c.case_id, v) for c, v in zip(cases, verdicts, strict=True)]
        card = res.card
        with open_store(ws.db_url) as store:
            store.record_trained_version(
                lease.run_id,
                {"name": name, "backend": card.backend, "base_model": base_model_text(card.base_models),
                 "parent": card.parent, "path": f"models/{name}", "note": card.description or None,
                 "card_sha256": card_sha256(card)},
                predictions, res.metrics, promoted=res.gate.promote, reason=res.gate.reason,
            )
        lease.finished = True
    except Exception as exc:
        shutil.rmtree(registry.root / name, ignore_errors=True)
        lease.finish("failed", f"recording the version failed: {exc}")
        if isinstance(exc, StoreError | OSError):
            raise CommandError(f"recording the new version failed, version removed: {exc}") from exc
        raise
