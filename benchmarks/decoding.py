"""An experiment, not a product path: greedy decoding against ``verdict_branches`` (the more
probable of the best ERROR and the best CORRECT answer) on a benchmark's versions.

On the workspaces ``medreview benchmark --dir DIR`` leaves (``DIR/seed-N``, never modified), each
of demo-v2, bench-sft and bench-rl answers the val split (and with ``--test`` the test split)
both ways; printed per version and decoding: cases right, false alarms, critical errors missed.

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.decoding --dir DIR [--seeds 0,1,2] [--test] \
        [--show]

``--show`` also prints each case a version gets wrong with verdict_branches, with the answer
kept and P(ERROR) over the two answers.

About a minute a seed on this 2-core CPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks._workspace import VERSIONS, add_workspace_args, manifest_cases


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_workspace_args(p)
    p.add_argument("--test", action="store_true", help="also the test split (look once)")
    p.add_argument("--show", action="store_true", help="print the cases verdict_branches misses")
    args = p.parse_args(argv)
    seeds: list[int] = args.seeds

    from core.models.registry import Registry, RegistryError

    splits = ("val", "test") if args.test else ("val",)
    for seed in seeds:
        root = Path(args.dir) / f"seed-{seed}"
        try:
            every = manifest_cases(root)
        except FileNotFoundError as e:
            print(f"decoding: {e}", file=sys.stderr)
            return 2
        registry = Registry(root / "models")
        for name in VERSIONS:
            try:
                backend = registry.load_backend(name, device="cpu", image_root=str(root))
            except RegistryError as e:
                print(f"decoding: {e}", file=sys.stderr)
                continue
            for decoding in ("greedy", "verdict_branches"):
                backend.decoding = decoding  # type: ignore[attr-defined]
                row = [f"seed {seed}", name, decoding]
                for split in splits:
                    cases = [c for c in every if c.split == split and c.error_type is not None]
                    verdicts = backend.predict(cases, batch_size=16)
                    said = [v.label.value == "ERROR" for v in verdicts]
                    if args.show and decoding == "verdict_branches":
                        for v, s, c in zip(verdicts, said, cases, strict=True):
                            if s != bool(c.is_error):
                                p_error = v.confidence if s else 1 - (v.confidence or 0.0)
                                print(f"  {name} {split} {c.case_id}: {v.text!r}, "
                                      f"P(ERROR answer) {p_error:.2f}")  # fmt: skip
                    right = sum(s == bool(c.is_error) for s, c in zip(said, cases, strict=True))
                    fp = sum(s and not c.is_error for s, c in zip(said, cases, strict=True))
                    crit = sum(
                        not s and c.severity == "critical" for s, c in zip(said, cases, strict=True)
                    )
                    row.append(
                        f"{split} {right}/{len(cases)} false alarms {fp} critical missed {crit}"
                    )
                print(" | ".join(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
