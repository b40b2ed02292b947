"""Run every CPU benchmark in turn and print their figures (``make bench``).

Each benchmark is its own module with its own ``--help``; this runs them with their defaults, one
process each, so one failing does not stop the others. The CUDA checks (``cuda_check``,
``cuda_train_check``) are left out: run them on a GPU machine.
"""

from __future__ import annotations

import subprocess
import sys
import time

BENCHMARKS = ("bench_store", "bench_demo", "bench_predict", "bench_gui", "bench_training")


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"\n=== benchmarks.{name} ===", flush=True)
        t0 = time.monotonic()
        rc = subprocess.call([sys.executable, "-m", f"benchmarks.{name}"])
        print(f"=== {name}: exit {rc}, {time.monotonic() - t0:.0f} s ===", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
