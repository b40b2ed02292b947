"""Demo benchmark generator and image I/O speed.

    .venv/bin/python -m benchmarks.bench_demo [--cases 600] [--repeats 3] [--seed 0]

Times, in a temporary folder: ``generate_demo`` for ``--cases`` cases (wall and CPU seconds,
median of ``--repeats``), each modality's phantom rendering and PNG encoding (median ms), then
``load_image`` on a demo PNG and on a DICOM file (what the viewer pays per case), and
``read_manifest`` importing the whole demo manifest into a fresh image folder. The load average is
printed too: on a shared machine wall time is inflated, CPU time less so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from core.cases.images import load_image
from core.demo import MANIFEST_NAME, generate_demo
from core.demo.generator import png_bytes
from core.demo.phantoms import VISUALS, render
from core.manifests.reader import read_manifest


def _timed(fn, repeats: int) -> tuple[float, float]:  # noqa: ANN001 - any callable
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=600)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        runs = iter(range(args.repeats))
        wall, cpu = _timed(
            lambda: generate_demo(root / f"demo{next(runs)}", seed=args.seed, n_cases=args.cases),
            args.repeats,
        )
        print(
            f"generate_demo, {args.cases} cases: median {wall:.2f} s wall, {cpu:.2f} s CPU "
            f"({cpu / args.cases * 1000:.1f} ms CPU per case)"
        )
        for modality, visuals in VISUALS.items():
            render_ms, png_ms = [], []
            for visual in visuals:
                for s in range(10):
                    t = time.process_time()
                    px, _ = render(modality, visual, np.random.default_rng(s), 224)
                    render_ms.append((time.process_time() - t) * 1000)
                    t = time.process_time()
                    png_bytes(px)
                    png_ms.append((time.process_time() - t) * 1000)
            print(
                f"  {modality:15s} render median {statistics.median(render_ms):5.1f} ms, "
                f"PNG {statistics.median(png_ms):4.1f} ms (CPU)"
            )
        demo = root / "demo0"
        pngs = sorted((demo / "images").iterdir())[:100]
        t = time.perf_counter()
        for p in pngs:
            load_image(p).to_pil()
        print(
            f"load_image + to_pil, demo PNG: {(time.perf_counter() - t) / len(pngs) * 1000:.2f} ms each"
        )
        from pydicom.data import get_testdata_file

        for name in ("CT_small.dcm", "MR_small.dcm", "SC_rgb_rle.dcm"):
            path = get_testdata_file(name, download=False)
            if path:
                w, _ = _timed(lambda p=path: load_image(p).to_pil(), 20)
                print(f"load_image + to_pil, {name}: {w * 1000:.2f} ms")
        w, c = _timed(lambda: read_manifest(demo / MANIFEST_NAME, root / "ws" / "images"), 1)
        print(
            f"read_manifest of the {args.cases}-case demo manifest: {w:.2f} s wall, {c:.2f} s CPU"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
