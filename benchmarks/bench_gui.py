"""GUI budgets (docs/architecture.md): start to first case shown < 1.5 s; next case with image and
verdicts < 30 ms (median), on a store holding 50,000 cases.

    .venv/bin/python -m benchmarks.bench_gui [--cases 50000] [--steps 200] [--keep DIR]

The workspace is built once with the store API (bulk ``add_cases`` / ``add_predictions``); the
cases share 64 distinct 512x512 images, as a real queue reuses nothing but the decoder. Start-up
is measured in a fresh interpreter (``app.gui.startup_probe``), from before the process is
launched to the moment the first case's text, verdicts and image are on screen. "Next case" is
measured in this process: ``ReviewModel.next()`` until the viewer holds that case's image,
once the full Store has opened behind the first case (``app.gui.preload.StartupReader``).

The start before the timed ones is reported apart: it is the first after an install when
Python has not cached the compiled modules, and it registers the benchmark's reviewer, a write
that loads SQLAlchemy before the first case (a returning reviewer's start never does).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MODALITIES = ("xray", "histopathology", "mri", "ultrasound")


def build(root: Path, n: int) -> None:
    from app.workspace import Workspace
    from feedback_db import CaseIn, PredictionIn, open_store

    ws = Workspace(root).ensure()
    rng = np.random.default_rng(0)
    for k in range(64):
        if k % 4 == 1:
            arr = (rng.random((512, 512, 3)) * 255).astype(np.uint8)
            Image.fromarray(arr, "RGB").save(ws.images_dir / f"img-{k}.png")
        else:
            yy, xx = np.mgrid[0:512, 0:512]
            arr = 90 + 80 * np.exp(-((xx - 256) ** 2 + (yy - 256) ** 2) / (2 * (60 + k) ** 2))
            arr = (arr + rng.normal(0, 10, arr.shape)).clip(0, 255).astype(np.uint8)
            Image.fromarray(arr, "L").save(ws.images_dir / f"img-{k}.png")
    cases = [
        CaseIn(
            case_id=f"case-{i:06d}",
            modality=MODALITIES[i % 4],
            image=f"images/img-{(i // 4 * 4 + i % 4) % 64}.png",
            finding=f"Finding {i % 37}",
            treatment=f"Treatment {i % 23}",
            error_type="none" if i % 3 else "treatment_mismatch",
            severity=None if i % 3 else "high",
            split=("train", "val", "test")[i % 3],
        )
        for i in range(n)
    ]
    store = open_store(ws.db_url)
    try:
        store.add_cases(cases)
        store.add_model_version("v1", "heuristic", "knowledge-table", active=True)
        store.add_model_version("v2", "clip-llm", "demo", parent="v1")
        for name, shift in (("v1", 0), ("v2", 1)):
            preds = []
            for i, c in enumerate(cases):
                label = "ERROR" if (i + shift) % 3 == 0 else "CORRECT"
                preds.append(
                    PredictionIn(
                        c.case_id,
                        label,
                        f"reason {i}",
                        f"{label} - reason {i}",
                        confidence=float(rng.uniform(0.5, 1.0)),
                    )
                )
            store.add_predictions(name, preds)
    finally:
        store.close()


def startup(root: Path, settings: Path, runs: int) -> tuple[list[float], float]:
    """Seconds from launch to the first case on screen: ``runs`` ordinary starts, and the one
    before them (returned apart), which is also the first after an install when Python has not
    yet cached the program's compiled modules.

    The probe runs with Python's bytecode cache on, as an installed app does: this sandbox sets
    PYTHONDONTWRITEBYTECODE, which would make every start compile the app from source.
    """
    env = {**os.environ, "MEDREVIEW_SETTINGS": str(settings)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    times = []
    for _ in range(runs + 1):
        t0 = time.time()
        out = subprocess.run(
            [sys.executable, "-m", "app.gui.startup_probe", str(root)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        if result.get("heavy"):
            raise SystemExit(f"start-up imported {result['heavy']}")
        if not result.get("has_image"):
            raise SystemExit(f"first case shown without its image: {result}")
        if times and result.get("sqlalchemy_loaded"):  # after the first start, which registers
            raise SystemExit(f"the first case waited for SQLAlchemy: {result}")
        times.append(result["shown_at"] - t0)
    return times[1:], times[0]


def next_case(root: Path, steps: int) -> tuple[list[float], float]:
    from app.gui.app import application, build_window
    from app.settings import Settings
    from app.workspace import Workspace

    app = application()
    win = build_window(Workspace(root), Settings(reviewer_name="bench"))
    win.show()
    while not win.first_case_shown:
        app.processEvents()
    store = getattr(type(win.ctx.reader), "store", None)
    if store is not None:  # the Store opens after the first case (app.gui.preload): wait for it,
        store(win.ctx.reader)  # as a clinician reading the first case does without noticing
    t = time.perf_counter()
    win.review_view.queue.modality.setCurrentIndex(1)  # a filter change re-runs the 50k query
    app.processEvents()
    filter_s = time.perf_counter() - t
    win.review_view.queue.modality.setCurrentIndex(0)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        win.review.next()
        case_id = win.review.shown.case.case_id
        while win.review_view.image.shown_case_id != case_id:
            app.processEvents()
        times.append(time.perf_counter() - t)
    errors = list(win.errors)
    win.close()
    if errors:
        raise SystemExit(f"errors during the benchmark: {errors}")
    return times, filter_s


def window_level(side: int = 4096) -> tuple[float, float]:
    """Median ms of one window/level re-map while dragging (preview) and on release (full)."""
    from app.gui.app import application
    from app.gui.image_viewer import ImageViewer

    app = application()
    viewer = ImageViewer()
    viewer.resize(800, 800)
    viewer.show()
    pixels = np.random.default_rng(0).random((side, side), dtype=np.float32)
    viewer.set_image(pixels, True)
    drag, full = [], []
    for i in range(40):
        t = time.perf_counter()
        viewer.set_window(0.3 + i * 0.005, 0.6, full=False)
        app.processEvents()
        drag.append(time.perf_counter() - t)
    for i in range(5):
        t = time.perf_counter()
        viewer.set_window(0.4 + i * 0.01, 0.5, full=True)
        app.processEvents()
        full.append(time.perf_counter() - t)
    viewer.close()
    return statistics.median(drag) * 1000, statistics.median(full) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=50_000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5, help="start-up runs")
    parser.add_argument("--keep", metavar="DIR", help="build (or reuse) the workspace here")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    tmp = tempfile.TemporaryDirectory(prefix="bench-gui-")
    root = Path(args.keep) if args.keep else Path(tmp.name) / "ws"
    settings = Path(tmp.name) / "settings.json"
    from app.settings import Settings, save_settings

    save_settings(Settings(reviewer_name="bench"), settings)
    os.environ["MEDREVIEW_SETTINGS"] = str(settings)
    if not (root / "medreview.db").exists():
        t = time.perf_counter()
        build(root, args.cases)
        print(
            f"built {args.cases} cases with 2 versions' verdicts in {time.perf_counter() - t:.1f} s"
        )
    starts, first_start = startup(root, settings, args.runs)
    nexts, filter_s = next_case(root, args.steps)
    med_start = statistics.median(starts)
    ms = sorted(x * 1000 for x in nexts)
    med_next, p95 = statistics.median(ms), ms[int(0.95 * (len(ms) - 1))]
    print(
        f"start to first case shown: median {med_start:.2f} s over {len(starts)} runs "
        f"(min {min(starts):.2f}, max {max(starts):.2f}); budget 1.5 s: {'OK' if med_start < 1.5 else 'OVER'}; "
        f"the start before them (the first after an install if Python had not cached the modules yet): "
        f"{first_start:.2f} s"
    )
    print(
        f"next case with image and verdicts: median {med_next:.1f} ms, p95 {p95:.1f} ms over {len(ms)} "
        f"steps; budget 30 ms: {'OK' if med_next < 30 else 'OVER'}"
    )
    print(f"filter change (re-query {args.cases} cases): {filter_s * 1000:.0f} ms")
    drag_ms, full_ms = window_level()
    print(
        f"window/level on a 4096x4096 greyscale image: {drag_ms:.1f} ms per drag step (preview), "
        f"{full_ms:.0f} ms full-resolution re-map on release"
    )
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
