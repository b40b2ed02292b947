"""An experiment, not a product path: how long should the demo CLIP train?

On a workspace ``medreview benchmark --dir DIR`` leaves (``DIR/seed-N``, never modified): for
each step count, a fresh demo CLIP (the card's seed, as ``train_demo_models`` builds it) is
trained on the manifest's train split exactly as ``train_demo_models`` trains demo-v2's
(``train_clip``, the ``DemoTrainConfig`` defaults with only ``clip_steps`` changed; the cosine
decay spans the whole run), keeping the checkpoint with the lowest val loss. Printed per run:
the kept step, val loss and top-1, the val loss at every check, and the one-threshold rule's
threshold and val accuracy on the kept CLIP's scores (``stated_threshold_on_val``). Only val is
read; nothing here looks at test.

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.clip_steps --workspace DIR/seed-0 \
        [--steps 800,1600] [--json OUT]

About 10 minutes per 800 steps on one core of this 2-core CPU (``OMP_NUM_THREADS=1``).
The default (1600) was chosen with it on seeds 0 and 1 (docs/models.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any


def fit_clip(root: Path, steps: int) -> dict[str, Any]:
    """Train one demo CLIP for ``steps`` on ``root``'s train split; what val says of it."""
    import torch

    from benchmarks._workspace import manifest_cases
    from core.demo.clip import DemoClipConfig, build_demo_clip
    from core.demo.lm import DemoLMConfig, build_demo_causal_lm
    from core.demo.train_models import DemoTrainConfig, stated_threshold_on_val, train_clip
    from core.models.backends.clip_llm import ClipLLMBackend, ClipLLMConfig

    cases = manifest_cases(root)
    train = [c for c in cases if c.split == "train" and c.error_type is not None]
    val = [c for c in cases if c.split == "val" and c.error_type is not None]
    cfg = replace(DemoTrainConfig(), clip_steps=steps)
    tmp = Path(tempfile.mkdtemp(prefix="clip-steps-"))
    try:
        torch.manual_seed(cfg.seed)  # as train_demo_models: the LM first, then the CLIP
        build_demo_causal_lm(tmp / "lm", DemoLMConfig(), seed=cfg.seed)
        build_demo_clip(tmp / "clip", DemoClipConfig(), seed=cfg.seed)
        start = time.perf_counter()
        fit = train_clip(tmp / "clip", train, cfg, None, "clip", val)
        seconds = time.perf_counter() - start
        backend = ClipLLMBackend(
            ClipLLMConfig(
                clip_model=str(tmp / "clip"),
                lm_model=str(tmp / "lm"),
                describe_image=True,
                device="cpu",
            )
        )
        t, rule_val = stated_threshold_on_val(backend, val)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "workspace": str(root),
        "steps": steps,
        "seconds": round(seconds),
        "best_step": fit.best_step,
        "val_loss": round(fit.val_loss, 4),
        "val_top1": round(fit.val_accuracy, 4),
        "val_loss_per_check": [[int(s), round(v, 3)] for s, _, v in fit.check_losses],
        "stated_threshold": t,
        "rule_val_accuracy": round(rule_val, 4),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workspace", required=True, help="a seed-N folder of `medreview benchmark`")
    p.add_argument("--steps", default="800,1600", help="CLIP step counts (comma-separated)")
    p.add_argument("--json", type=Path, help="also write the runs to this JSON file")
    args = p.parse_args(argv)
    try:
        steps = [int(s) for s in args.steps.split(",")]
    except ValueError:
        print(f"clip_steps: --steps must be whole numbers, got {args.steps!r}", file=sys.stderr)
        return 2
    if any(s < 1 for s in steps):
        print("clip_steps: every --steps value must be at least 1", file=sys.stderr)
        return 2
    runs = []
    for n in steps:
        try:
            run = fit_clip(Path(args.workspace), n)
        except FileNotFoundError as e:
            print(f"clip_steps: {e}", file=sys.stderr)
            return 2
        runs.append(run)
        print(
            f"{n} steps: kept step {run['best_step']}, val loss {run['val_loss']:.3f}, "
            f"top-1 {run['val_top1']:.1%}; rule t {run['stated_threshold']:.2f}, "
            f"val {run['rule_val_accuracy']:.1%}; {run['seconds']} s",
            flush=True,
        )
        print(
            "  val loss per check: " + ", ".join(f"{s}: {v}" for s, v in run["val_loss_per_check"])
        )
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
