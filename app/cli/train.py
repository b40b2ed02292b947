"""``medreview train``: train a new model version from the clinicians' ratings.

    medreview train retrain [--parent VERSION] [--steps N] [--progress json] ...
    medreview train {sft,reward,ppo,dpo,grpo} [--parent VERSION] ...

``retrain`` is the one-click pipeline (SFT where there are gold answers, reward model, PPO,
evaluation on the test split, safety gate, registration); the other verbs run one stage through
the same pipeline, so every verb ends in an evaluated, registered version or in nothing at all.

This is the child process the GUI starts: with ``--progress json`` it prints one JSON object per
line on stdout (DESIGN.md), and everything else the libraries print goes to stderr. SIGTERM asks
for a cancel, honoured at the next step. The last line says how it ended: stage ``done``,
``failed`` or ``canceled``, with a message. Exit 0 on success, 2 on failure or cancel.

Store writes happen only after the engine succeeded: the training run, the version row, its
evaluation (promoted or not, with the gate's reason) and its predictions on the held-out cases.
If one of them fails, the new version folder is removed and the run is marked failed, so a failed
or canceled run leaves the previous version as it was.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
from dataclasses import replace
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
from core.progress import Canceled, Progress, ProgressEvent, json_lines

if TYPE_CHECKING:
    from app.workspace import Workspace
    from core.cases import Case

STAGES = {
    "retrain": ("sft", "reward", "ppo"),
    "sft": ("sft",),
    "reward": ("reward",),
    "ppo": ("ppo",),
    "dpo": ("dpo",),
    "grpo": ("grpo",),
}
HELP = {
    "retrain": "the one-click pipeline: SFT (gold answers), reward model, PPO, evaluate, register",
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
        k.add_argument("--reviewer", metavar="NAME", help="only this reviewer's ratings")
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
    work = Path(tempfile.mkdtemp(prefix="export.", dir=ws.ensure().runs_dir))
    try:
        # Library chatter goes to stderr: stdout carries only our JSON lines.
        with cancel_on_sigterm(progress), contextlib.redirect_stdout(sys.stderr):
            version, promoted, reason = _train(args, ws, cfg, work, progress)
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
    finally:
        shutil.rmtree(work, ignore_errors=True)
    state = "promoted to active" if promoted else "registered, not promoted"
    _final(mode, real_stdout, "done", f"version {version} {state}: {reason}")
    return EXIT_OK


def _cases(store: Any, split: str, root: Path) -> list[Case]:
    from app.convert import case_from_record

    ids = store.query_case_ids(split=split, order="id")
    out = []
    for rec in store.get_cases(ids):
        c = case_from_record(rec)
        image = c.image if Path(c.image).is_absolute() else str(root / c.image)
        out.append(replace(c, image=image))
    return out


def _train(
    args: argparse.Namespace, ws: Workspace, cfg: Any, work: Path, progress: Progress
) -> tuple[str, bool, str]:
    from core.registry import Registry, RegistryError
    from core.training.data import FeedbackFileError
    from core.training.retrain import RetrainError, is_main_process, retrain
    from feedback_db import StoreError, open_store
    from feedback_db.export import export_feedback

    try:
        with open_store(ws.db_url) as store:
            parent = args.parent
            if parent is None:
                active = store.active_version()
                if active is None:
                    raise CommandError("no active version; name one with --parent")
                parent = active.name
            heldout = _cases(store, "test", ws.root)
            prompts = _cases(store, "train", ws.root)
            feedback = Path(args.feedback) if args.feedback else work / "expert_feedback.jsonl"
            if not args.feedback:
                progress.update("export", 0, None, message="exporting ratings")
                result = export_feedback(
                    store, feedback, workspace_root=ws.root, reviewer=args.reviewer
                )
                if result.rows == 0:
                    raise CommandError("no preference pairs to train on; rate some cases first")
    except StoreError as exc:
        raise CommandError(str(exc)) from exc
    from app.versions import recorded_card_hashes

    registry = Registry(ws.models_dir, card_hashes=recorded_card_hashes(ws))  # a changed card is refused
    try:
        res = retrain(
            registry, parent, feedback, heldout, ws.runs_dir, cfg,
            prompts=prompts, image_root=str(ws.root), progress=progress,
        )  # fmt: skip
    except (RetrainError, RegistryError, FeedbackFileError) as exc:
        raise CommandError(str(exc)) from exc
    if is_main_process():  # under `accelerate launch` the main process alone writes the store
        _record(ws, registry, args.kind, cfg, parent, res)
    return res.card.name, res.gate.promote, res.gate.reason


def _record(ws: Workspace, registry: Any, kind: str, cfg: Any, parent: str, res: Any) -> None:
    """The store's side, after the engine succeeded; on a store failure the version is removed."""
    from dataclasses import asdict

    from app.versions import mirror_card, store_verdicts
    from feedback_db import StoreError, open_store

    name = res.card.name
    run_id = None
    try:
        with open_store(ws.db_url) as store:
            if store.get_model_version(parent) is None:
                mirror_card(store, registry.card(parent))
            run_id = store.add_training_run(kind, asdict(cfg), parent).id
            mirror_card(store, res.card, metrics=res.metrics)
            store_verdicts(store, name, res.heldout, res.verdicts)
            store.record_evaluation(
                name, res.metrics, promoted=res.gate.promote, reason=res.gate.reason
            )
            store.finish_training_run(run_id, "succeeded", res.gate.reason, version=name)
    except (StoreError, OSError) as exc:
        shutil.rmtree(registry.root / name, ignore_errors=True)
        if run_id is not None:
            with contextlib.suppress(StoreError), open_store(ws.db_url) as store:
                store.finish_training_run(run_id, "failed", f"recording the version failed: {exc}")
        raise CommandError(f"recording the new version failed, version removed: {exc}") from exc
