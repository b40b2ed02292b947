"""An experiment, not a product path: how do demo-v2's language model's training choices change
its reading of the same image scores? The share of training descriptions mixed toward another
finding (``call_mix``), and the knowledge examples' treatment draws (``balanced_knowledge``).

On the workspaces ``medreview benchmark --dir DIR`` leaves (``DIR/seed-N``, never modified), per
seed, draw kind and mix share: a fresh demo LM (initial weights and batch order seeded with the
workspace's seed N; the benchmark seeds demo-v2's with the card's ``seed``, 0, so only seed 0
reproduces it) is trained as
``train_demo_models`` trained demo-v2's (the manifest's cases in its order, the card's
settings, the train split plus the knowledge examples, the kept CLIP's descriptions with the
call at the card's ``stated_threshold``, checkpoint on val log loss; one run, no restarts), then
it answers val greedily and with ``verdict_branches``; the wrong greedy answers are counted by
scenario kind. The kept CLIP is the workspace's own and is not retrained, so only the LM's
reading of the same scores differs. The one-threshold rule on those scores is printed beside
it (what the LM should at least match).

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.lm_call_mix --dir DIR \
        [--seeds 0,1,2] [--mix 0,0.3,0.6] [--draws balanced,random] [--test] [--json OUT]

About 3.5 minutes a seed, draw kind and share on this 2-core CPU. ``--test`` adds the test
split: look at it once, at the end; the defaults were chosen on val.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any


def lm_right(backend: Any, cases: list, decoding: str = "greedy") -> tuple[int, dict[str, int]]:
    """Cases whose verdict word is the truth, and the wrong ones by scenario kind."""
    backend.decoding = decoding
    wrong: dict[str, int] = {}
    right = 0
    for v, c in zip(backend.predict(cases, batch_size=32), cases, strict=True):
        if (v.label.value == "ERROR") == bool(c.is_error):
            right += 1
        else:
            wrong[c.error_type] = wrong.get(c.error_type, 0) + 1
    backend.decoding = "greedy"
    return right, dict(sorted(wrong.items()))


def load_workspace(root: Path) -> tuple[dict[str, Any], dict[str, list]]:
    """demo-v2's card and the cases with ground truth by split, in the manifest's order (the
    order train_demo_models was given: knowledge examples and batches are drawn case by case)."""
    from benchmarks._workspace import manifest_cases

    card = json.loads((root / "models" / "demo-v2" / "model_card.json").read_text())
    every = manifest_cases(root)
    cases = {
        s: [c for c in every if c.split == s and c.error_type is not None]
        for s in ("train", "val", "test")
    }
    return card, cases


def run_one(
    root: Path,
    card: dict[str, Any],
    cases: dict[str, list],
    seed: int,
    mix: float,
    test: bool,
    balanced: bool = True,
) -> dict[str, Any]:
    """A fresh LM trained at ``mix`` on the workspace's kept CLIP, with the card's settings."""
    import torch

    from core.demo.lm import DemoLMConfig, build_demo_causal_lm
    from core.demo.train_models import DemoTrainConfig, _mix_calls, knowledge_examples, train_lm
    from core.models.backends.clip_llm import ClipLLMBackend, ClipLLMConfig

    threshold = card["settings"]["stated_threshold"]
    train, val = cases["train"], cases["val"]
    known = {f.name for f in fields(DemoTrainConfig)}
    trained = {k: v for k, v in card["training"].items() if k in known}
    trained["names"] = tuple(trained.get("names", DemoTrainConfig().names))
    cfg = replace(DemoTrainConfig(**trained), seed=seed, call_mix=mix, balanced_knowledge=balanced)
    tmp = Path(tempfile.mkdtemp(prefix="lm-call-mix-"))
    try:
        torch.manual_seed(seed)
        lm = build_demo_causal_lm(tmp / "lm", DemoLMConfig(), seed=seed)
        backend = ClipLLMBackend(
            ClipLLMConfig(
                clip_model=str(root / "models" / "demo-v2" / "base" / "clip"),
                lm_model=str(lm),
                describe_image=True,
                device="cpu",
                stated_threshold=threshold,
            )
        )
        examples = list(train) + knowledge_examples(train, True, seed, cfg.balanced_knowledge)
        own = backend.describe
        counts = _mix_calls(backend, examples, mix, seed) if mix > 0 else {}
        t0 = time.monotonic()
        fit = train_lm(backend, examples, cfg, None, "lm", val)
        backend.describe = own  # type: ignore[method-assign]

        def scored(split: str, split_cases: list) -> dict[str, Any]:
            right, wrong = lm_right(backend, split_cases)
            branches, _ = lm_right(backend, split_cases, "verdict_branches")
            return {
                f"{split}_right": right,
                f"{split}_wrong_by_kind": wrong,
                f"{split}_right_verdict_branches": branches,
            }

        out: dict[str, Any] = {
            "seed": seed,
            "mix": mix,
            "draws": "balanced" if balanced else "random",
            "seconds": round(time.monotonic() - t0),
            "best_step": fit.get("best_step"),
            "val_log_loss": round(fit["val_verdict_log_loss"], 4),
            "val_cases": len(val),
            **scored("val", val),
            **{f"mixed_{k}": v for k, v in counts.items()},
        }
        if test:
            out.update(test_cases=len(cases["test"]), **scored("test", cases["test"]))
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    from app.cli.benchmark import threshold_rule

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", required=True, help="the folder `medreview benchmark --dir` filled")
    p.add_argument("--seeds", default="0,1,2", help="its seed-N workspaces to use")
    p.add_argument("--mix", default="0,0.3,0.6", help="call_mix shares to compare")
    p.add_argument(
        "--draws",
        default="balanced",
        help="knowledge examples' treatment draws to compare: balanced, random or both "
        "(balanced,random); see DemoTrainConfig.balanced_knowledge",
    )
    p.add_argument(
        "--test", action="store_true", help="also score the test split (once, at the end)"
    )
    p.add_argument("--json", help="write the rows to this file")
    args = p.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
        mixes = [float(m) for m in args.mix.split(",")]
        draws = [{"balanced": True, "random": False}[d] for d in args.draws.split(",")]
    except (ValueError, KeyError):
        print(
            "lm_call_mix: --seeds takes integers, --mix numbers and --draws balanced or random, "
            "comma-separated",
            file=sys.stderr,
        )
        return 2
    rows = []
    for seed in seeds:
        root = Path(args.dir) / f"seed-{seed}"
        if not (root / "models" / "demo-v2" / "model_card.json").is_file():
            print(
                f"lm_call_mix: {root} has no demo-v2 (run `medreview benchmark --dir {args.dir}` first)",
                file=sys.stderr,
            )
            return 2
        card, cases = load_workspace(root)
        if "stated_threshold" not in card.get("settings", {}):
            print(
                f"lm_call_mix: {root}: demo-v2 has no stated_threshold (trained with stated_call off)",
                file=sys.stderr,
            )
            return 2
        # The one-threshold rule on the same CLIP scores, once a seed: the bar the LM should meet.
        rule = threshold_rule(root, cases["val"], cases["test"], "cpu")
        for mix, balanced in ((m, b) for b in draws for m in mixes):
            row = run_one(root, card, cases, seed, mix, args.test, balanced)
            row["rule_val_right"] = round(rule["val"] * len(cases["val"]))
            if args.test:
                row["rule_test_right"] = round(rule["test"] * len(cases["test"]))
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
