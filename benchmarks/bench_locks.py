"""A clinician's ratings under another program's write lock: how many are confirmed, how many are
lost (the target is 0), and the longest wait the clinician saw (figures, not a timed test).

    .venv/bin/python -m benchmarks.bench_locks [--lock-s 30] [--import-ratings 30000] [--json OUT]

Two scenarios on a real SQLite workspace file, the rater saving through the GUI's db lane
(``app.gui.operations.Operations``, the same lane, worker thread and Store the window uses):

1. ``lock``: another process (a ``sqlite3`` connection in a child process) takes the write lock
   with BEGIN IMMEDIATE and holds it for ``--lock-s`` seconds; the rater saves a rating every
   0.5 s from just before the lock until after it ends.
2. ``import``: another process imports ``--import-ratings`` ratings from an
   ``expert_feedback.jsonl`` (``medreview import``'s code, ``import_feedback``, which commits in
   short batches) while the rater saves a rating every 0.2 s.

"Wait" is from the moment the clinician confirmed (``ReviewModel.save`` submits to the lane) to
the moment the store had it (the lane's success callback). A rating is lost if it failed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

MODALITIES = ("xray", "histopathology", "mri", "ultrasound")


def _seed(root: Path, n_cases: int) -> dict[str, Any]:
    """A workspace with ``n_cases`` cases, two versions and their verdicts, and one image."""
    from sqlalchemy import insert

    from feedback_db import open_store
    from feedback_db.models import CaseRow, ModelVersionRow, PredictionRow, utcnow
    from tests.feedback_db.factory import png_bytes

    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "images" / "one.png").write_bytes(png_bytes(90, secret=None))
    store = open_store(f"sqlite:///{root / 'medreview.db'}")
    now = utcnow()
    with store.sessions.scope("seeding", write=True) as s:
        s.add_all(
            [
                ModelVersionRow(name="v1", backend="heuristic", base_model="t", active=True),
                ModelVersionRow(name="v2", backend="heuristic", base_model="t"),
            ]
        )
        s.flush()
        s.execute(
            insert(CaseRow),
            [
                {
                    "case_id": f"c{i:06d}",
                    "modality": MODALITIES[i % 4],
                    "image": "images/one.png",
                    "finding": f"finding {i}",
                    "treatment": f"treatment {i}",
                    "split": "review",
                    "meta": {},
                    "created_at": now,
                    "burned_in": False,
                }
                for i in range(n_cases)
            ],
        )
        s.execute(
            insert(PredictionRow),
            [
                {
                    "version_id": v,
                    "case_id": f"c{i:06d}",
                    "label": "ERROR" if v == 2 else "CORRECT",
                    "reason": "r",
                    "text": ("ERROR - r" if v == 2 else "CORRECT - r"),
                    "confidence": 0.7,
                    "latency_ms": 1.0,
                    "created_at": now,
                }
                for i in range(n_cases)
                for v in (1, 2)
            ],
        )
    store.ensure_reviewer("dr-clinician", "radiologist")  # before any lock is taken
    preds = {}
    for i in range(200):  # the cases the clinician rates
        cid = f"c{i:06d}"
        by_version = {p.version: p for p in store.predictions_for_case(cid)}
        preds[cid] = (by_version["v1"].id, by_version["v2"].id)
    store.close()
    return preds


def _ratings_file(folder: Path, n: int, n_cases: int) -> Path:
    """``n`` ratings by ten reviewers over the cases (not the clinician's), with one image."""
    from tests.feedback_db.factory import png_bytes

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "images").mkdir(exist_ok=True)
    (folder / "images" / "one.png").write_bytes(png_bytes(90, secret=None))
    path = folder / "expert_feedback.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for k in range(n):
            i = 200 + k % (n_cases - 200)
            reviewer = f"dr-import-{k // (n_cases - 200)}"
            line = {
                "prompt": f"Modality: x\nClinical Finding: finding {i}\nTreatment: treatment {i}",
                "chosen": "ERROR - r",
                "rejected": "CORRECT - r",
                "images": ["images/one.png"],
                "case_id": f"c{i:06d}",
                "modality": MODALITIES[i % 4],
                "true_label": "ERROR",
                "severity": "high",
                "reviewer": reviewer,
                "rated_at": f"2026-01-01T00:00:{k % 60:02d}.{k:06d}Z",
            }
            fh.write(json.dumps(line) + "\n")
    return path


def _hold_lock(db: str, seconds: float, ready: Any) -> None:
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    ready.set()
    time.sleep(seconds)
    con.execute("COMMIT")
    con.close()


def _import(db_url: str, path: str, ready: Any, out: Any) -> None:
    from feedback_db import open_store
    from feedback_db.import_jsonl import import_feedback

    store = open_store(db_url)
    ready.set()
    t0 = time.perf_counter()
    res = import_feedback(store, Path(path), create_reviewers=True)
    out.put(
        {"imported": res.ratings, "errors": len(res.errors), "seconds": time.perf_counter() - t0}
    )
    store.close()


def _rate_through_the_lane(
    db_url: str,
    preds: dict[str, tuple[int, int]],
    interval: float,
    duration: float,
    background: mp.Process,
) -> dict[str, Any]:
    """Save a rating every ``interval`` s for ``duration`` s through the GUI's db lane."""
    from app.gui.operations import Operations
    from app.qt import QCoreApplication
    from feedback_db import RatingIn, open_store

    app = QCoreApplication.instance() or QCoreApplication(sys.argv[:1])
    ops = Operations(open_writer=lambda: open_store(db_url, upgrade=False))
    # The window's lane has its Store open long before the first rating (start-up registers the
    # reviewer through it), so it is opened here before the clock starts.
    rid = ops.db.submit(
        lambda s, _p: next(r.id for r in s.reviewers() if r.name == "dr-clinician")
    ).future.result(60)
    waits: list[float] = []
    failures: list[str] = []
    submitted = 0
    cases = list(preds)
    start = time.monotonic()
    next_at = start
    while time.monotonic() - start < duration or (submitted > len(waits) + len(failures)):
        now = time.monotonic()
        if now >= next_at and now - start < duration:
            cid = cases[submitted % len(cases)]
            a, b = preds[cid]
            rating = RatingIn(cid, rid, a, b, "b", "ERROR", "high")
            t0 = time.monotonic()
            ops.db.submit(
                lambda s, _p, r=rating: s.add_rating(r),
                on_success=lambda _r, t0=t0: waits.append(time.monotonic() - t0),
                on_failure=lambda e: failures.append(str(e)),
            )
            submitted += 1
            next_at += interval
        app.processEvents()
        time.sleep(0.005)
    background.join(timeout=600)
    ops.shutdown()
    return {
        "submitted": submitted,
        "confirmed": len(waits),
        "lost": len(failures),
        "longest_wait_s": round(max(waits), 3) if waits else None,
        "median_wait_s": round(statistics.median(waits), 4) if waits else None,
        "p95_wait_s": round(sorted(waits)[int(0.95 * (len(waits) - 1))], 4) if waits else None,
        "failures": failures[:3],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--lock-s", type=float, default=30.0, help="how long the other process holds the lock"
    )
    p.add_argument(
        "--import-ratings", type=int, default=30_000, help="ratings the other process imports"
    )
    p.add_argument("--json", metavar="OUT", help="write the figures as JSON")
    args = p.parse_args(argv)
    ctx = mp.get_context("spawn")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-locks-") as tmp:
        root = Path(tmp)
        n_cases = 3200
        preds = _seed(root, n_cases)
        db = str(root / "medreview.db")
        url = f"sqlite:///{db}"

        ready = ctx.Event()
        holder = ctx.Process(target=_hold_lock, args=(db, args.lock_s, ready))
        holder.start()
        ready.wait(30)
        results["lock"] = {
            "lock_s": args.lock_s,
            **_rate_through_the_lane(url, preds, 0.5, args.lock_s + 3, holder),
        }

        path = _ratings_file(root / "share", args.import_ratings, n_cases)
        ready = ctx.Event()
        out = ctx.Queue()
        importer = ctx.Process(target=_import, args=(url, str(path), ready, out))
        importer.start()
        ready.wait(60)
        rated = _rate_through_the_lane(url, preds, 0.2, 20.0, importer)
        results["import"] = {"import_ratings": args.import_ratings, **out.get(timeout=600), **rated}
    for name, r in results.items():
        print(
            f"{name:>7}: {r['confirmed']}/{r['submitted']} ratings confirmed, {r['lost']} lost, "
            f"longest wait {r['longest_wait_s']} s, p95 {r['p95_wait_s']} s, median {r['median_wait_s']} s"
            + (
                f" (import: {r['imported']} ratings in {r['seconds']:.1f} s)"
                if name == "import"
                else ""
            )
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(r["lost"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
