"""What portable numerics costs, and what it buys: the same small demo build, in fresh processes,
under ``--numerics portable`` and ``native``.

Each run generates ``--cases`` demo cases (seed 5) and trains both demo models for ``--steps``
CLIP and LM steps through the real code (``train_demo_models``), timing the image generation,
the CLIP and the language models separately, and hashing the images and both models' weights.
Each mode runs ``--repeats`` times, so the table shows whether a mode repeats itself and whether
the two modes agree (on a CPU whose native kernels are AVX2 they may; on an AVX-512 one they do
not), and the time each costs on this machine.

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.numerics [--cases 120] [--steps 200] \
        [--repeats 2] [--json OUT]

About 11 minutes with the defaults on this 2-core CPU (four builds), on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from core.runtime.numerics import PORTABLE_ENV, portable_unavailable

ROOT = Path(__file__).resolve().parents[1]

ONE_RUN = """
import hashlib, json, sys, tempfile, time
from pathlib import Path
mode, cases_n, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
reason = None
if mode == "portable":
    from core.runtime.numerics import use_portable_numerics
    reason = use_portable_numerics()
t0 = time.perf_counter()
from core.demo import generate_demo
from core.demo.train_models import DemoTrainConfig, train_demo_models
from core.runtime.numerics import describe_numerics, numerics_in_effect
root = Path(tempfile.mkdtemp())
cases = generate_demo(root, seed=5, n_cases=cases_n)
t1 = time.perf_counter()
times = {}
class Clock:
    stage = None
    start = 0.0
    def __call__(self, ev):
        if ev.stage != self.stage:
            now = time.perf_counter()
            if self.stage is not None:
                times[self.stage] = times.get(self.stage, 0.0) + now - self.start
            self.stage, self.start = ev.stage, now
from core.runtime.progress import Progress
clock = Clock()
cfg = DemoTrainConfig(seed=5, clip_steps=steps, lm_steps=steps, eval_every=max(1, steps // 2),
                      lm_restarts=1)
train_demo_models(cases, root / "models", progress=Progress(clock), config=cfg,
                  image_root=str(root))
t2 = time.perf_counter()
clock(type("E", (), {"stage": "end"})())
def digest(paths):
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.read_bytes())
    return h.hexdigest()[:16]
print(json.dumps({
    "mode": mode, "reason": reason, "numerics": describe_numerics(numerics_in_effect()),
    "seconds": {"images": t1 - t0, "models": t2 - t1, "stages": times},
    "images": digest((root / "images").glob("*.png")),
    "demo-v1": digest((root / "models" / "demo-v1").rglob("*.safetensors")),
    "demo-v2": digest((root / "models" / "demo-v2").rglob("*.safetensors")),
}))
"""


def one_run(mode: str, cases: int, steps: int) -> dict[str, Any]:
    """One build in a fresh interpreter (the numerics are fixed when NumPy and torch load)."""
    env = {k: v for k, v in os.environ.items() if k not in PORTABLE_ENV}
    env.pop("MEDREVIEW_NUMERICS", None)
    env["HF_HUB_OFFLINE"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", ONE_RUN, mode, str(cases), str(steps)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        tail = out.stderr.strip().splitlines()[-1:] or ["no message"]
        raise SystemExit(f"benchmarks.numerics: the {mode} run failed: {tail[0]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=120, help="demo cases (default 120)")
    ap.add_argument("--steps", type=int, default=200, help="CLIP and LM steps (default 200)")
    ap.add_argument("--repeats", type=int, default=2, help="runs per mode (default 2)")
    ap.add_argument("--json", metavar="OUT", help="write every run as JSON")
    args = ap.parse_args(argv)
    if (reason := portable_unavailable()) is not None:
        print(f"benchmarks.numerics: {reason}; nothing to compare", file=sys.stderr)
        return 2
    runs = [
        one_run(mode, args.cases, args.steps)
        for _ in range(args.repeats)
        for mode in ("portable", "native")
    ]
    print("| mode | arithmetic | images s | CLIP s | LMs s | images | demo-v1 | demo-v2 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        st = r["seconds"]["stages"]
        clip = sum(v for k, v in st.items() if "image encoder" in k)
        lms = sum(v for k, v in st.items() if "image encoder" not in k)
        print(f"| {r['mode']} | {r['numerics']} | {r['seconds']['images']:.1f} | {clip:.1f} | "
              f"{lms:.1f} | {r['images']} | {r['demo-v1']} | {r['demo-v2']} |")  # fmt: skip
    for mode in ("portable", "native"):
        mine = [(r["images"], r["demo-v1"], r["demo-v2"]) for r in runs if r["mode"] == mode]
        print(f"{mode}: {'repeats itself' if len(set(mine)) == 1 else 'differs between runs'}")
    same = {(r["images"], r["demo-v1"], r["demo-v2"]) for r in runs}
    print("portable and native: " + ("the same bytes" if len(same) == 1 else "different bytes"))
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
