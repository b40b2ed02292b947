"""MedGemma-4B's architecture at full depth in bf16 on CUDA: one predict, SFT step, reward-model
step and PPO step on ONE backbone, each in its own process, with peak memory, seconds and
generation tokens/s.

    .venv/bin/python -m benchmarks.cuda_train_check [--json OUT] [--layers 34] [--rehearse-on-cpu]

The same children as ``benchmarks/real_size.py`` (its docstring says what each step runs), on
``cuda`` in bfloat16 at all 34 text layers, random weights, no download. Each step's JSON entry
has ``peak_rss_bytes`` (the process's host memory), ``seconds`` and ``peak_cuda_bytes``
(``torch.cuda.max_memory_allocated``); the top level adds ``generation_tokens_per_s`` (predict's
greedy generation), and ``full_depth_bf16_estimate`` is then the measurement itself. It checks
the budget: reward and PPO peaks within 1.5x of predict's (exit 1 if not).

With no CUDA device it says so and exits 0; ``--rehearse-on-cpu`` runs the same script at tiny
widths on the CPU in fp32, to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RATIO = 1.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="OUT", help="write the figures as JSON")
    parser.add_argument("--layers", type=int, default=34, help="text layers (default all 34)")
    parser.add_argument("--rehearse-on-cpu", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import torch

    from benchmarks import real_size

    if args.rehearse_on_cpu:
        device, dtype, rehearse, layers = "cpu", "float32", True, 2
        print("cuda_train_check: rehearsal on the CPU (tiny widths, fp32)")
    elif not torch.cuda.is_available():
        print("cuda_train_check: no CUDA device here; nothing to check (exit 0)")
        return 0
    else:
        bf16 = torch.cuda.is_bf16_supported()
        device, dtype, rehearse, layers = (
            "cuda",
            "bfloat16" if bf16 else "float32",
            False,
            args.layers,
        )
        print(f"cuda_train_check: {torch.cuda.get_device_name(0)}, {dtype}, {layers} text layers")
    results = real_size.run(layers, device, dtype, rehearse)
    doc = real_size.report(results, layers, dtype, extra=True)
    print(real_size.describe(results, doc))
    key = "peak_cuda_bytes" if device == "cuda" else "peak_rss_bytes"
    base = results["predict"][key]
    ratios = {s: results[s][key] / base for s in ("reward_step", "ppo_step")}
    ok = all(r <= RATIO for r in ratios.values())
    tps = doc.get("generation_tokens_per_s")
    if tps is not None:
        print(f"generation: {tps:.1f} tokens/s (batch of {real_size.BATCH}, greedy)")
    print(
        "cuda_train_check:",
        "OK" if ok else "FAILED",
        ", ".join(f"{s} {r:.2f}x predict" for s, r in ratios.items()),
        f"(budget {RATIO}x)",
    )
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
