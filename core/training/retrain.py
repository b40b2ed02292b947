"""The one-click retrain: gold-answer SFT, reward model, PPO, evaluation, safety gate, register.

Inputs are files and case lists (core never opens the database): ``expert_feedback.jsonl`` (the
store's TRL export) and, where the caller has it, the KTO export of the same ratings (every rating,
ties included), the workspace's cases (so a prompt is built from the case's own fields), the
``val`` cases (ground truth: the evaluation and the safety gate), the ``test`` cases (predicted for
the record only, never used for a decision) and more prompt cases for PPO (the unrated ``review``
cases). ``core.training.data.load_training_data`` derives what each stage learns from; it never
reads a case's ground truth, and ratings on val/test cases are left out.

Before anything trains, the retrain says what it will learn from (``TrainingData.summary``, a
``data`` progress event) and refuses, with that message, when it is too little
(``RetrainConfig.min_judged_cases``, ``min_reward_pairs``) or when nothing is new since the parent
(the same data fingerprint, and the parent already ran the stages asked for).

The stages are the rows of the one table, ``core.training.retrain_config.STAGES``: the ones
``RetrainConfig.stages`` asks for run in the table's order, each by its function (in
``core.training.stages``) on one ``StageContext`` they share; no stage is named here.

The safety gate compares the new version with the ACTIVE one (the version clinicians use, given
by the caller; the parent when not given) on the val cases.

Everything is written to a temporary folder under ``runs_dir``; the registry moves it into place
as the new version only after every stage succeeded. A failure or a cancel removes the folder and
re-raises: the registry and the parent version are left exactly as they were. What the store
records (the run, the version row, the evaluation, the predictions) is the caller's business, done
after this returns (``app/cli/train.py``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.cases.records import Case
from core.clinical.verdicts import Verdict
from core.evaluation import evaluate
from core.models.backends.base import TrainablePolicy
from core.models.registry import ModelCard, Registry
from core.runtime.progress import Progress
from core.training.data import TrainingData, load_training_data, read_cases
from core.training.retrain_config import STAGES, RetrainConfig
from core.training.safety import GateDecision, safety_gate
from core.training.stages import StageContext

CaseSource = str | Path | Sequence[Case]


class RetrainError(RuntimeError):
    """The retrain cannot run (too little or nothing new to learn from, a parent that cannot be
    trained); nothing was changed. The message says why, in words."""


@dataclass
class RetrainResult:
    """A registered new version, its metrics on the val cases, and the gate's decision.

    ``heldout``/``verdicts``: the new version's verdicts on the val cases, then on the test
    cases (for the store's record; only val decided anything). ``active_metrics``: the active
    version's metrics on the val cases. ``data``: what it learned from (``TrainingData.to_dict``).
    """

    card: ModelCard
    gate: GateDecision
    metrics: dict[str, Any]
    active_metrics: dict[str, Any]
    heldout: list[Case]
    verdicts: list[Verdict]
    reports: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


def is_main_process() -> bool:
    """False in the other processes of an ``accelerate launch`` / ``torchrun`` job."""
    return int(os.environ.get("RANK", "0")) == 0


def default_name(parent: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{parent[:40]}-rl-{stamp}"


def _copy_bases(card: ModelCard, parent_dir: Path, work: Path, used: dict[str, str]) -> None:
    """Bring the parent's local base models (``base/...``) that the new version still uses
    (``used``, its card's base models) into it: hard links when the filesystem allows (same
    bytes, no copy), else copies."""
    for key, ref in card.base_models.items():
        if used.get(key) != ref or (work / ref).exists():
            continue  # replaced by a stage (the encoder stage's new encoder, even of the same name)
        src = parent_dir / ref
        if Path(ref).is_absolute() or not src.exists():
            continue  # a hub id or an absolute path: nothing to carry
        dest = work / ref
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dest, copy_function=_link_or_copy, dirs_exist_ok=True)


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def _stage(progress: Progress | None, stage: str, message: str) -> None:
    if progress is not None:
        progress.check()
        progress.update(stage, 0, None, message=message)


def _case_list(source: CaseSource | None) -> list[Case]:
    if source is None:
        return []
    return list(read_cases(source) if isinstance(source, str | Path) else source)


def check_data(
    data: TrainingData, cfg: RetrainConfig, parent_card: ModelCard | None = None
) -> None:
    """Refuse a retrain that has too little, or nothing new, to learn from.

    Raises:
        RetrainError: with the data summary and what would be enough.
    """
    summary = data.summary()
    judged = len(data.judgements)
    if judged < cfg.min_judged_cases:
        raise RetrainError(
            f"too little to learn from ({summary}): {judged} clinician-judged cases outside "
            f"val/test, at least {cfg.min_judged_cases} needed (RetrainConfig.min_judged_cases); "
            "rate more review cases first"
        )
    wants_pairs = [s for s in cfg.stages if STAGES[s].min_reward_pairs]
    if wants_pairs and len(data.reward_pairs) < cfg.min_reward_pairs:
        raise RetrainError(
            f"too little to learn from ({summary}): {len(data.reward_pairs)} preference pairs, "
            f"at least {cfg.min_reward_pairs} needed for {' and '.join(wants_pairs)} "
            "(RetrainConfig.min_reward_pairs)"
        )
    if parent_card is not None:
        before = (parent_card.training or {}).get("data") or {}
        stages = set((parent_card.training or {}).get("config", {}).get("stages") or ())
        if before.get("fingerprint") == data.fingerprint() and set(cfg.stages) <= stages:
            raise RetrainError(
                f"nothing new since {parent_card.name}: it was trained ({'+'.join(sorted(stages))}) "
                f"on exactly these {data.ratings} ratings; rate more cases first"
            )


def retrain(
    registry: Registry,
    parent: str,
    feedback: str | Path | None,
    heldout: CaseSource,
    runs_dir: str | Path,
    config: RetrainConfig | None = None,
    *,
    ratings: str | Path | None = None,
    cases: Sequence[Case] | None = None,
    prompts: CaseSource | None = None,
    report_cases: CaseSource | None = None,
    active: str | None = None,
    image_root: str | None = None,
    progress: Progress | None = None,
) -> RetrainResult:
    """Train a new version from ``parent`` on the clinicians' ratings and register it.

    Args:
        registry: the model registry (``<workspace>/models``).
        parent: the version to start from (a clip-llm or vlm version).
        feedback: ``expert_feedback.jsonl`` (TRL pairs); None with ``ratings`` alone.
        heldout: the val cases (file or list), with ground truth: the new version's metrics and
            the safety gate are measured on them.
        runs_dir: where the temporary output goes (same filesystem as the registry).
        ratings: the KTO export of the same ratings (every rating, ties included).
        cases: the workspace's cases, so each rated case is bound to its own fields and image.
        prompts: more cases to draw PPO prompts from (the judged cases are always used).
        report_cases: cases (the test split) the new version is also run on, for the record.
        active: the version clinicians use, which the gate compares with (default ``parent``).

    Raises:
        RetrainError: too little or nothing new to learn from, no val cases, or a parent with no
            trainable model. Nothing is written.
        core.runtime.progress.Canceled: canceled; nothing was registered.
        Any error of a stage, after the temporary folder was removed.
    """
    cfg = config or RetrainConfig()
    t0 = time.perf_counter()
    _stage(progress, "load", f"reading {feedback or ratings}")
    held = _case_list(heldout)
    report = [c for c in _case_list(report_cases) if c.case_id not in {h.case_id for h in held}]
    if not held:
        raise RetrainError("no val cases to evaluate the new version on")
    held_ids = {c.case_id for c in held} | {c.case_id for c in report}
    data = load_training_data(
        feedback, ratings, cases=cases, heldout_ids=held_ids, prompts=_case_list(prompts)
    )
    parent_card = registry.card(parent)
    if progress is not None:
        progress.update("data", 0, None, message=data.summary())
    check_data(data, cfg, parent_card)
    policy = registry.load_backend(parent, device=cfg.device, image_root=image_root)
    if not isinstance(policy, TrainablePolicy):
        raise RetrainError(f"version {parent!r} ({parent_card.backend}) has no trainable model")
    name = cfg.name or default_name(parent)
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=runs_dir))
    run = _Run(registry, name, held, report, active or parent, image_root, t0)
    ctx = StageContext(
        policy, data, cfg, work, parent_card, registry.path(parent), progress, val=held
    )
    try:
        return _run(run, ctx)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _active_verdicts(
    registry: Registry,
    active: str,
    parent: str,
    policy: Any,
    held: list[Case],
    cfg: RetrainConfig,
    image_root: str | None,
    progress: Progress | None,
) -> list[Verdict]:
    """The active version's verdicts on the val cases (the parent's own model when it is the
    active one, before any training)."""
    model = policy
    if active != parent:
        model = registry.load_backend(active, device=cfg.device, image_root=image_root)
    try:
        return list(
            model.predict(
                held, batch_size=cfg.batch_size, progress=progress, stage="evaluate-active"
            )
        )
    finally:
        del model


@dataclass
class _Run:
    """One retrain's fixed inputs besides what the stages share: where it registers, the new
    version's name, the val cases and the test cases it is run on, the active version the gate
    compares with, where relative image paths start, and when it started."""

    registry: Registry
    name: str
    held: list[Case]
    report_cases: list[Case]
    active: str
    image_root: str | None
    started: float


def _run(run: _Run, ctx: StageContext) -> RetrainResult:
    cfg, progress, parent_card, policy = ctx.cfg, ctx.progress, ctx.parent, ctx.policy
    held, report_cases, active = run.held, run.report_cases, run.active
    reports: dict[str, Any] = {"data": ctx.data.to_dict()}
    active_verdicts = _active_verdicts(
        run.registry, active, parent_card.name, policy, held, cfg, run.image_root, progress
    )
    active_report = evaluate(held, active_verdicts)

    # The stages asked for, in the table's order (core.training.retrain_config.STAGES).
    for stage in STAGES.values():
        asked = stage.name in cfg.stages
        step = stage.runner() if asked else stage.skipped_runner()
        if step is None:
            continue
        stage_report = step(ctx)
        if stage_report is not None:
            reports[stage.name] = stage_report
            if asked:
                ctx.ran.append(stage.name)
    if ctx.reward_model is not None:
        ctx.reward_model.release()  # its adapter leaves the shared backbone (saved above)
    if hasattr(policy.model, "peft_config"):
        policy.save_adapter(str(ctx.work / "adapter"))

    verdicts = policy.predict(held, batch_size=cfg.batch_size, progress=progress, stage="evaluate")
    report = evaluate(held, verdicts)
    gate = safety_gate(
        held, active_verdicts, verdicts, cfg.max_fpr, active_name=active, split="val"
    )
    extra = (
        policy.predict(
            report_cases, batch_size=cfg.batch_size, progress=progress, stage="predict-test"
        )
        if report_cases
        else []
    )
    if progress is not None:
        progress.check()  # the last moment a cancel is honoured: after this the version exists
        progress.update("register", 0, None, message=gate.reason)
    reports["gate"] = gate.to_dict()
    reports["active"] = {"name": active, "metrics": active_report.to_dict()}
    reports["seconds"] = time.perf_counter() - run.started
    fields: dict[str, Any] = dict(
        parent=parent_card.name,
        training={"kind": "retrain", "config": asdict(cfg), **reports},
        metrics=report.to_dict(),
        settings=ctx.settings,
        description=(
            f"{'+'.join(cfg.stages)} from {parent_card.name} on {ctx.data.ratings} ratings "
            f"({len(ctx.data.judgements)} judged cases)"
        ),
    )
    name, work = run.name, ctx.work
    if not is_main_process():
        # Under `accelerate launch`, every process trains; only the main one registers.
        shutil.rmtree(work, ignore_errors=True)
        card = ModelCard(name, parent_card.backend, ctx.base_models, **fields)
    else:
        _copy_bases(parent_card, ctx.parent_dir, work, ctx.base_models)
        card = run.registry.create_version(
            name, parent_card.backend, ctx.base_models, from_folder=work, **fields
        )
    return RetrainResult(
        card, gate, report.to_dict(), active_report.to_dict(), [*held, *report_cases],
        [*verdicts, *extra], reports, ctx.data.to_dict(),
    )  # fmt: skip
