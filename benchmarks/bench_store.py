"""Store budgets (docs/architecture.md): saving a rating under 5 ms; exporting 100,000 pairs under 5 s.

    .venv/bin/python -m benchmarks.bench_store [--ratings 500] [--pairs 100000] [--images 200]

Everything happens in a temporary folder on a real SQLite file with the app's settings (WAL,
foreign keys, synchronous=NORMAL; the rating is also timed with FULL, an fsync per commit). The
100,000 pairs are built with bulk inserts (two reviewers rating 50,000 cases, each case's verdicts
from two versions), with ``--images`` distinct PNG files
shared by the cases, then exported through ``feedback_db.export.export_feedback``. Also timed: the
review-queue query over the 50,000 cases, and importing the first ``--import-lines`` lines of the
export into a fresh store (what another workstation does). Prints medians and p95.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

from feedback_db import CaseIn, PredictionIn, RatingIn, open_store
from feedback_db.export import export_feedback
from feedback_db.import_jsonl import import_feedback
from feedback_db.models import CaseRow, PredictionRow, PreferencePairRow, RatingRow, utcnow
from tests.feedback_db.factory import png_bytes

MODALITIES = ("xray", "histopathology", "mri", "ultrasound")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_rating(root: Path, n: int, synchronous: str = "NORMAL") -> None:
    """Median time of ``Store.add_rating`` with SQLite's ``synchronous`` NORMAL (default) or FULL."""
    store = open_store(f"sqlite:///{root / f'rating-{synchronous}.db'}", synchronous=synchronous)
    (root / "images").mkdir(exist_ok=True)
    store.add_cases(
        CaseIn(f"c{i:06d}", MODALITIES[i % 4], "images/x.png", "Finding", "Treatment")
        for i in range(n)
    )
    store.add_model_version("a", "heuristic", "t")
    store.add_model_version("b", "heuristic", "t")
    for v in ("a", "b"):
        store.add_predictions(
            v, [PredictionIn(f"c{i:06d}", "ERROR", "r", f"ERROR - {v} r", 0.7) for i in range(n)]
        )
    rev = store.ensure_reviewer("dr-bench", "radiologist")
    pairs = {
        cid: [p.id for p in store.predictions_for_case(cid)]
        for cid in (f"c{i:06d}" for i in range(n))
    }
    first: list[float] = []
    again: list[float] = []
    for times, pref in ((first, "a"), (again, "both_wrong")):
        for cid, (pa, pb) in pairs.items():
            r = RatingIn(cid, rev.id, pa, pb, pref, "ERROR", "high", "a corrected reason")
            t0 = time.perf_counter()
            store.add_rating(r)
            times.append((time.perf_counter() - t0) * 1000)
    store.close()
    label = (
        "synchronous=NORMAL, the default"
        if synchronous == "NORMAL"
        else f"synchronous={synchronous}, optional"
    )
    print(
        f"save a rating ({label}), {n} new: median {statistics.median(first):.2f} ms, p95 {_pct(first, 0.95):.2f} ms; "
        f"{n} superseding: median {statistics.median(again):.2f} ms  (budget 5 ms)"
    )


def build_pairs(root: Path, n_pairs: int, n_images: int) -> tuple[object, float]:
    store = open_store(f"sqlite:///{root / 'export.db'}")
    (root / "images").mkdir(exist_ok=True)
    for k in range(n_images):
        (root / "images" / f"img{k}.png").write_bytes(png_bytes(k % 256))
    n_cases = n_pairs // 2
    store.add_model_version("base", "heuristic", "t")
    store.add_model_version("v2", "clip-llm", "t")
    r1, r2 = (
        store.ensure_reviewer("dr-a", "radiologist"),
        store.ensure_reviewer("dr-b", "pathologist"),
    )
    t0 = time.perf_counter()
    now = utcnow()
    with store.sessions.scope("bulk build", write=True) as s:
        s.execute(
            insert(CaseRow),
            [
                {
                    "case_id": f"c{i:06d}",
                    "modality": MODALITIES[i % 4],
                    "image": f"images/img{i % n_images}.png",
                    "finding": f"Finding {i % 97}",
                    "treatment": f"Treatment {i % 89}",
                    "error_type": "none",
                    "severity": None,
                    "cost_impact": None,
                    "split": "train",
                    "meta": {},
                    "created_at": now,
                }
                for i in range(n_cases)
            ],
        )
        s.execute(
            insert(PredictionRow),
            [
                {
                    "id": 2 * i + v + 1,
                    "version_id": v + 1,
                    "case_id": f"c{i:06d}",
                    "label": "ERROR" if v else "CORRECT",
                    "reason": "r",
                    "text": ("ERROR" if v else "CORRECT") + f" - reason {i % 13}",
                    "confidence": 0.5 + (i % 50) / 100,
                    "latency_ms": 5.0,
                    "created_at": now,
                }
                for i in range(n_cases)
                for v in (0, 1)
            ],
        )
        ratings, pairs = [], []
        for i in range(n_cases):
            for j, rev in enumerate((r1, r2)):
                rid = 2 * i + j + 1
                ratings.append(
                    {
                        "id": rid,
                        "case_id": f"c{i:06d}",
                        "reviewer_id": rev.id,
                        "prediction_a_id": 2 * i + 1,
                        "prediction_b_id": 2 * i + 2,
                        "preference": "b",
                        "true_label": "ERROR",
                        "severity": "high",
                        "rationale": None,
                        "margin": None,
                        "supersedes_id": None,
                        "retracted": False,
                        "created_at": now,
                    }
                )
                pairs.append(
                    {
                        "id": rid,
                        "rating_id": rid,
                        "case_id": f"c{i:06d}",
                        "chosen": f"ERROR - reason {i % 13}",
                        "rejected": f"CORRECT - reason {i % 13}",
                    }
                )
        s.execute(insert(RatingRow), ratings)
        s.execute(insert(PreferencePairRow), pairs)
    return store, time.perf_counter() - t0


def bench_import(root: Path, exported: Path, n_lines: int) -> None:
    """Import the first ``n_lines`` of an export into a fresh store holding the same cases."""
    subset = exported.with_name("subset.jsonl")
    with exported.open(encoding="utf-8") as src, subset.open("w", encoding="utf-8") as dst:
        for _, line in zip(range(n_lines), src, strict=False):
            dst.write(line)
    store = open_store(f"sqlite:///{root / 'import.db'}")
    with store.sessions.scope("bulk build", write=True) as s:
        s.execute(
            insert(CaseRow),
            [
                {
                    "case_id": f"c{i:06d}",
                    "modality": MODALITIES[i % 4],
                    "image": "images/x.png",
                    "finding": "f",
                    "treatment": "t",
                    "meta": {},
                    "created_at": utcnow(),
                }
                for i in range(n_lines)
            ],
        )
    t0 = time.perf_counter()
    res = import_feedback(store, subset, create_reviewers=True)
    took = time.perf_counter() - t0
    assert res.ratings == n_lines and not res.errors, (res.ratings, res.errors[:3])
    print(
        f"import {n_lines} pairs (validate, images checked, one transaction): {took:.2f} s "
        f"({took / n_lines * 1e3:.2f} ms a rating)"
    )
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ratings", type=int, default=500)
    ap.add_argument("--pairs", type=int, default=100_000)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--import-lines", type=int, default=10_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bench_rating(root, args.ratings, "NORMAL")
        bench_rating(root, args.ratings, "FULL")
        store, build_s = build_pairs(root, args.pairs, args.images)
        print(f"bulk-build {args.pairs} ratings + pairs ({args.pairs // 2} cases): {build_s:.2f} s")
        queue = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            ids = store.query_case_ids(versions=("base", "v2"))  # type: ignore[attr-defined]
            queue.append(time.perf_counter() - t0)
        print(
            f"queue query, {len(ids)} cases, uncertainty order over two versions: median {statistics.median(queue) * 1000:.0f} ms"
        )
        times = []
        for k in range(args.repeat):
            out = (
                root / f"export{k}" / "expert_feedback.jsonl"
            )  # fresh folder: images written each time
            t0 = time.perf_counter()
            res = export_feedback(store, out, workspace_root=root)  # type: ignore[arg-type]
            times.append(time.perf_counter() - t0)
            assert res.rows == args.pairs and not res.problems, (res.rows, res.problems[:3])
        size = out.stat().st_size / 1e6
        print(
            f"export {res.rows} pairs ({size:.0f} MB, {res.images_written} images): median {statistics.median(times):.2f} s, "
            f"min {min(times):.2f} s over {args.repeat}  (budget 5 s)"
        )
        store.close()  # type: ignore[attr-defined]
        bench_import(root, out, args.import_lines)


if __name__ == "__main__":
    main()
