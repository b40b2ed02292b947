"""The one-click retrain: gold-answer SFT, reward model, PPO, evaluation, safety gate, register.

Inputs are files (core never opens the database): ``expert_feedback.jsonl`` (the store's export),
the held-out cases (JSONL of ``Case`` dicts with ground truth) and, optionally, more prompt cases
for PPO (the train split). Pairs on held-out cases are dropped, so the evaluation never sees a case
the model was trained on.

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

from core.backends.base import TrainablePolicy
from core.cases import Case
from core.evaluation import evaluate
from core.progress import Progress
from core.registry import ModelCard, Registry
from core.training.data import read_cases, read_feedback, sft_examples, unique_cases
from core.training.retrain_config import RetrainConfig
from core.training.safety import GateDecision, safety_gate
from core.verdicts import Verdict


class RetrainError(RuntimeError):
    """The retrain cannot run (no pairs, a parent that cannot be trained); nothing was changed."""


@dataclass
class RetrainResult:
    """A registered new version, its metrics on the held-out cases, and the gate's decision."""

    card: ModelCard
    gate: GateDecision
    metrics: dict[str, Any]
    parent_metrics: dict[str, Any]
    heldout: list[Case]
    verdicts: list[Verdict]
    reports: dict[str, Any] = field(default_factory=dict)


def is_main_process() -> bool:
    """False in the other processes of an ``accelerate launch`` / ``torchrun`` job."""
    return int(os.environ.get("RANK", "0")) == 0


def default_name(parent: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{parent[:40]}-rl-{stamp}"


def _copy_bases(card: ModelCard, parent_dir: Path, work: Path) -> None:
    """Bring the parent's local base models (``base/...``) into the new version: hard links when
    the filesystem allows (same bytes, no copy), else copies."""
    for ref in card.base_models.values():
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


def retrain(
    registry: Registry,
    parent: str,
    feedback: str | Path,
    heldout: str | Path | Sequence[Case],
    runs_dir: str | Path,
    config: RetrainConfig | None = None,
    *,
    prompts: str | Path | Sequence[Case] | None = None,
    image_root: str | None = None,
    progress: Progress | None = None,
) -> RetrainResult:
    """Train a new version from ``parent`` on the ratings in ``feedback`` and register it.

    Args:
        registry: the model registry (``<workspace>/models``).
        parent: the version to start from (a clip-llm or vlm version).
        feedback: ``expert_feedback.jsonl``.
        heldout: the held-out cases (file or list), with ground truth, for evaluation and the gate.
        runs_dir: where the temporary output goes (same filesystem as the registry).
        prompts: more cases to draw PPO prompts from (the rated cases are always used).

    Raises:
        RetrainError: nothing to train on, or the parent has no trainable model.
        core.progress.Canceled: canceled; nothing was registered.
        Any error of a stage, after the temporary folder was removed.
    """
    cfg = config or RetrainConfig()
    t0 = time.perf_counter()
    _stage(progress, "load", f"reading {feedback}")
    pairs = read_feedback(feedback)
    held = list(read_cases(heldout) if isinstance(heldout, str | Path) else heldout)
    held_ids = {c.case_id for c in held}
    train_pairs = [p for p in pairs if p.case.case_id not in held_ids]
    if not train_pairs:
        raise RetrainError(f"{feedback}: no preference pairs outside the held-out cases")
    if not held:
        raise RetrainError("no held-out cases to evaluate the new version on")
    extra = list(read_cases(prompts) if isinstance(prompts, str | Path) else prompts or [])
    prompt_cases = {c.case_id: c for c in unique_cases(train_pairs)}
    for c in extra:
        if c.case_id not in held_ids:
            prompt_cases.setdefault(c.case_id, c)

    parent_card = registry.card(parent)
    policy = registry.load_backend(parent, device=cfg.device, image_root=image_root)
    if not isinstance(policy, TrainablePolicy):
        raise RetrainError(f"version {parent!r} ({parent_card.backend}) has no trainable model")
    name = cfg.name or default_name(parent)
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=runs_dir))
    try:
        return _run(
            registry, parent_card, policy, name, work, cfg, train_pairs, held,
            list(prompt_cases.values()), progress, t0,
        )  # fmt: skip
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _run(
    registry: Registry,
    parent_card: ModelCard,
    policy: Any,
    name: str,
    work: Path,
    cfg: RetrainConfig,
    pairs: list[Any],
    held: list[Case],
    prompt_cases: list[Case],
    progress: Progress | None,
    t0: float,
) -> RetrainResult:
    from core.training.ppo import PPOTrainer, can_stack_adapter
    from core.training.reward import train_reward_model
    from core.training.sft import train_sft

    reports: dict[str, Any] = {"pairs": len(pairs), "prompt_cases": len(prompt_cases)}
    parent_dir = registry.path(parent_card.name)
    parent_verdicts = policy.predict(
        held, batch_size=cfg.batch_size, progress=progress, stage="evaluate-parent"
    )
    parent_report = evaluate(held, parent_verdicts)

    gold = sft_examples(pairs, confirmed=cfg.sft.confirmed)
    want_sft = cfg.run_sft == "yes" or (cfg.run_sft == "auto" and len(gold) >= cfg.sft_min_examples)
    sft_ran = False
    if "sft" in cfg.stages and want_sft and gold:
        _stage(progress, "sft", f"{len(gold)} gold answers")
        reports["sft"] = train_sft(policy, gold, cfg.sft, progress).to_dict()
        sft_ran = True

    reward_model = None
    if "reward" in cfg.stages:
        _stage(progress, "reward", f"{len(pairs)} preference pairs")
        reward_model, reward_report = train_reward_model(policy, pairs, cfg.reward, progress)
        reward_model.save(work / "reward_model", reward_report)
        reports["reward"] = reward_report.to_dict()
        if progress is not None:
            acc = reward_report.eval_accuracy
            held_text = (
                "no held-out pairs" if acc is None else f"held-out pairwise accuracy {acc:.3f}"
            )
            progress.update(
                "reward", reward_report.steps, reward_report.steps,
                loss=reward_report.train_loss, message=f"{held_text} ({reward_report.eval_pairs} pairs)",
            )  # fmt: skip
    elif (parent_dir / "reward_model" / "reward_card.json").exists():
        from core.training.reward import RewardModel

        reward_model = RewardModel.load(parent_dir / "reward_model", policy)
        shutil.copytree(parent_dir / "reward_model", work / "reward_model")
        reports["reward"] = {"from_parent": parent_card.name}

    if "ppo" in cfg.stages:
        _stage(progress, "ppo", f"{len(prompt_cases)} prompt cases")
        # The reference is the policy PPO starts from (standard RLHF): after SFT the SFT model,
        # else a parent version's own adapter (e.g. an SFT version). That adapter stays on,
        # frozen, PPO trains its own adapter on top, and both are folded into one at the end.
        # A parent without an adapter and no SFT: a fresh adapter, the base as reference.
        stack = can_stack_adapter(policy.model)
        trainer = PPOTrainer(
            policy, cfg.ppo, reward_model=reward_model, progress=progress,
            reference="current" if stack else "base",
        )  # fmt: skip
        ppo_report = trainer.train(prompt_cases)
        trainer.fold_adapters()
        reports["ppo"] = {"steps": ppo_report.steps, "seconds": ppo_report.seconds,
                          "reference": ("sft" if sft_ran else "parent") if stack else "base",
                          "history": ppo_report.history}  # fmt: skip
        del trainer
    for alt in ("dpo", "grpo"):
        if alt in cfg.stages:
            import core.training.alternatives as alternatives

            _stage(progress, alt, f"{len(pairs)} preference pairs")
            run = alternatives.train_dpo if alt == "dpo" else alternatives.train_grpo
            reports[alt] = run(policy, pairs, prompt_cases, reward_model, cfg, progress)
    if reward_model is not None:
        reward_model.release()  # its adapter leaves the shared backbone (saved above)
    if hasattr(policy.model, "peft_config"):
        policy.save_adapter(str(work / "adapter"))

    verdicts = policy.predict(held, batch_size=cfg.batch_size, progress=progress, stage="evaluate")
    report = evaluate(held, verdicts)
    gate = safety_gate(held, parent_verdicts, verdicts, cfg.max_fpr)
    if progress is not None:
        progress.check()  # the last moment a cancel is honoured: after this the version exists
        progress.update("register", 0, None, message=gate.reason)
    reports["gate"] = gate.to_dict()
    reports["seconds"] = time.perf_counter() - t0
    fields: dict[str, Any] = dict(
        parent=parent_card.name,
        training={"kind": "retrain", "config": asdict(cfg), **reports},
        metrics=report.to_dict(),
        settings=parent_card.settings,
        description=f"{'+'.join(cfg.stages)} from {parent_card.name} on {len(pairs)} rated pairs",
    )
    if not is_main_process():
        # Under `accelerate launch`, every process trains; only the main one registers.
        shutil.rmtree(work, ignore_errors=True)
        card = ModelCard(name, parent_card.backend, parent_card.base_models, **fields)
    else:
        _copy_bases(parent_card, parent_dir, work)
        card = registry.create_version(
            name, parent_card.backend, parent_card.base_models, from_folder=work, **fields
        )
    return RetrainResult(
        card, gate, report.to_dict(), parent_report.to_dict(), held, verdicts, reports
    )
