"""``medreview train retrain`` as the GUI runs it: a child process printing JSON progress lines.

A small real demo workspace (demo cases, the two demo versions briefly trained, their verdicts,
ratings by the SIMULATED reviewer on the train split), then: a run that succeeds registers a
version and records it in the store; SIGTERM mid-run and a failing run leave the registry and
every store row as they were, and the last line says why it ended.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "app.cli.main"]
# A 60-case workspace has about 15 rated review cases: below the default minimum of 20; and every
# run starts from demo-v2 (a version trained on these same ratings would refuse: nothing new).
SMALL = ["--min-judged", "5", "--parent", "demo-v2"]


@pytest.fixture(scope="module")
def demo_ws(tmp_path_factory) -> Path:
    import torch

    from app.cli.benchmark import simulate_reviews
    from app.convert import case_in_from_case
    from app.versions import mirror_card, store_verdicts
    from core.demo import generate_demo
    from core.demo.train_models import DemoTrainConfig, train_demo_models
    from core.models.registry import Registry
    from feedback_db import open_store

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("train-ws")
    for d in ("models", "runs", "images", "exports"):
        (root / d).mkdir(exist_ok=True)
    cases = generate_demo(root, seed=1, n_cases=60)  # train/review/val/test
    cfg = DemoTrainConfig(clip_steps=10, lm_steps=20)
    cards = train_demo_models(cases, root / "models", config=cfg, image_root=str(root))
    registry = Registry(root / "models")
    with open_store(f"sqlite:///{root / 'medreview.db'}") as store:
        store.add_cases(case_in_from_case(c) for c in cases)
        for i, card in enumerate(cards):
            backend = registry.load_backend(card.name, device="cpu", image_root=str(root))
            mirror_card(store, card, active=i == 1)
            store_verdicts(store, card.name, cases, backend.predict(cases, batch_size=16))
        assert simulate_reviews(store, cards[0].name, cards[1].name, "review") > 0
    torch.set_num_threads(threads)
    return root


def _snapshot(root: Path) -> dict:
    from feedback_db import open_store

    with open_store(f"sqlite:///{root / 'medreview.db'}") as store:
        return {
            "counts": store.info().counts,
            "versions": [(v.name, v.active) for v in store.model_versions()],
            "runs": [(r.id, r.status) for r in store.training_runs()],
            "folders": sorted(p.name for p in (root / "models").iterdir()),
            "runs_dir": sorted(p.name for p in (root / "runs").iterdir()),
        }


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_retrain_registers_and_records_the_new_version(demo_ws):
    before = _snapshot(demo_ws)
    proc = subprocess.run(
        [*CLI, "train", "retrain", "--workspace", str(demo_ws), "--progress", "json",
         "--steps", "2", "--epochs", "1", "--batch-size", "4", "--name", "rl-1", "--device", "cpu",
         *SMALL],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = _lines(proc.stdout)  # every stdout line is one of our JSON objects
    assert set(events[0]) == {"stage", "step", "total", "loss", "reward", "kl", "eta_s", "message"}
    stages = [e["stage"] for e in events]
    assert {"export", "reward", "ppo", "evaluate", "register"} <= set(stages)
    assert stages[-1] == "done" and "rl-1" in events[-1]["message"]
    ppo = [e for e in events if e["stage"] == "ppo" and e["step"] > 0]
    steps = [e for e in ppo if not (e["message"] or "").startswith("val check")]
    assert steps and all(e["kl"] is not None and e["reward"] is not None for e in steps)
    checks = [e for e in events if (e["message"] or "").startswith("val check at step")]
    assert [e["step"] for e in checks] == [0, 2]  # before the first step and after the last

    after = _snapshot(demo_ws)
    assert "rl-1" in after["folders"] and after["runs_dir"] == before["runs_dir"]
    from feedback_db import open_store

    with open_store(f"sqlite:///{demo_ws / 'medreview.db'}") as store:
        version = store.get_model_version("rl-1")
        assert version is not None and version.parent == "demo-v2"
        [evaluation] = store.evaluations("rl-1")
        assert evaluation.reason
        assert store.predictions_for_version("rl-1", split="test")
        assert store.training_runs()[-1].status == "succeeded"
        assert store.training_runs()[-1].version == "rl-1"


def test_sigterm_cancels_and_changes_nothing(demo_ws):
    before = _snapshot(demo_ws)
    proc = subprocess.Popen(
        [*CLI, "train", "retrain", "--workspace", str(demo_ws), "--progress", "json",
         "--steps", "500", "--epochs", "1", "--batch-size", "4", "--name", "rl-cancel",
         "--device", "cpu", *SMALL],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    seen = []
    try:
        for line in proc.stdout:
            seen.append(json.loads(line))
            if seen[-1]["stage"] == "ppo" and seen[-1]["step"] >= 1:
                proc.send_signal(signal.SIGTERM)
                break
        rest = proc.stdout.read()
        rc = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert seen and seen[-1]["stage"] == "ppo", seen[-3:]
    last = _lines(rest)[-1]
    assert last["stage"] == "canceled" and rc != 0
    after = _snapshot(demo_ws)
    # The run is on record as canceled (the audit trail); nothing else changed, no folder is left.
    new_run = after["runs"][-1]
    assert new_run[1] == "canceled" and after["runs"][:-1] == before["runs"]
    counts = dict(after["counts"], training_runs=before["counts"]["training_runs"])
    assert {**after, "runs": before["runs"], "counts": counts} == before


def test_failure_says_why_and_changes_nothing(demo_ws):
    before = _snapshot(demo_ws)
    proc = subprocess.run(
        [*CLI, "train", "reward", "--workspace", str(demo_ws), "--progress", "json",
         "--parent", "no-such-version"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    last = _lines(proc.stdout)[-1]
    assert last["stage"] == "failed" and "no-such-version" in last["message"]
    assert _snapshot(demo_ws) == before


@pytest.mark.slow
def test_benchmark_quick_writes_the_schema(tmp_path):
    out = tmp_path / "table.json"
    proc = subprocess.run(
        [*CLI, "benchmark", "--quick", "--seeds", "3", "--dir", str(tmp_path / "bench"),
         "--json", str(out), "--progress", "none"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert set(doc) == {"seeds", "phases", "paired"} and doc["seeds"] == [3]
    assert [p["phase"] for p in doc["phases"]] == ["heuristic", "vision", "sft", "rl"]
    row = doc["phases"][3]["per_seed"][0]
    assert row["workspace"] == str(tmp_path / "bench" / "seed-3") and row["version"] == "bench-rl"
    assert (tmp_path / "bench" / "seed-3" / "medreview.db").is_file()
    assert "text heuristic" in proc.stdout


def _kill_at(demo_ws: Path, stage: str, when) -> None:
    """Start a retrain and kill -9 it at the first progress line that ``when`` accepts."""
    proc = subprocess.Popen(
        [*CLI, "train", "retrain", "--workspace", str(demo_ws), "--progress", "json",
         "--steps", "2", "--epochs", "1", "--batch-size", "4", "--device", "cpu", *SMALL],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        for line in proc.stdout:
            event = json.loads(line)
            if when(event):
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("stage", ["reward", "predict-review"])
def test_a_kill_at_any_instant_is_reconciled_at_start_up(demo_ws: Path, stage: str) -> None:
    """kill -9 during training and after the version folder was moved into place (while its
    review verdicts are computed, before the store's one transaction): the next start-up leaves
    store and registry consistent, the run closed as killed, no temporary folder."""
    from app.runs import reconcile
    from app.workspace import Workspace
    from feedback_db import open_store

    before = _snapshot(demo_ws)
    _kill_at(demo_ws, stage, lambda e: e["stage"] == stage)
    mid = _snapshot(demo_ws)
    assert mid["runs"][-1][1] == "running"  # the kill left it so
    if stage == "predict-review":
        assert (
            len(mid["folders"]) == len(before["folders"]) + 1
        )  # an orphan the store does not know
    done = reconcile(Workspace(demo_ws))
    after = _snapshot(demo_ws)
    assert done.runs_closed == [mid["runs"][-1][0]]
    assert after["runs"][-1][1] == "killed" and after["runs"][:-1] == before["runs"]
    assert after["folders"] == before["folders"] and after["versions"] == before["versions"]
    assert after["runs_dir"] == []
    with open_store(f"sqlite:///{demo_ws / 'medreview.db'}") as store:
        store_names = {v.name for v in store.model_versions()}
    assert store_names <= set(after["folders"]) | {"heuristic"}


def test_retrain_says_what_it_learns_from_and_refuses_too_little(demo_ws):
    before = _snapshot(demo_ws)
    proc = subprocess.run(
        [*CLI, "train", "retrain", "--workspace", str(demo_ws), "--progress", "json",
         "--device", "cpu", "--parent", "demo-v2", "--min-judged", "1000"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 2
    events = _lines(proc.stdout)
    data = [e for e in events if e["stage"] == "data"]
    # What it would learn from, by kind (what it left out appears only when something was).
    assert data and all(
        words in data[0]["message"]
        for words in (
            "judged cases",
            "by split: review",
            "rated preference pairs",
            "verdict-flipped pairs",
            "gold answers",
            "prompts for PPO",
        )
    )
    last = events[-1]
    assert last["stage"] == "failed" and "too little to learn from" in last["message"]
    assert "at least 1000" in last["message"]
    after = _snapshot(demo_ws)
    assert after["folders"] == before["folders"] and after["versions"] == before["versions"]
    assert after["runs_dir"] == before["runs_dir"]


def _inputs(root: Path):
    """What a retrain would learn from in the workspace at ``root`` (export included)."""
    import argparse
    import tempfile

    from app.cli.train import training_inputs
    from app.workspace import Workspace
    from core.models.registry import Registry
    from core.runtime.progress import Progress
    from core.training.data import load_training_data

    ws = Workspace(root)
    args = argparse.Namespace(parent=None, feedback=None, ratings=None, reviewer=None)
    work = Path(tempfile.mkdtemp(dir=root / "runs"))
    inputs = training_inputs(args, ws, work, Progress(), Registry(ws.models_dir))
    held = {c.case_id for c in inputs.cases if c.split in ("val", "test")}
    data = load_training_data(inputs.feedback, inputs.ratings, cases=inputs.cases, heldout_ids=held,
                              prompts=inputs.split("review"))  # fmt: skip
    return inputs, data


def test_scrambled_ground_truth_of_every_non_test_case_leaves_training_inputs_unchanged(
    demo_ws, tmp_path
):
    """Training never reads a case's error_type, severity or meta: in a copy of the workspace
    they are scrambled on every train/review/val case, and what a retrain learns from (pairs,
    flipped pairs, gold answers, judgements, prompts, the cases it is given) is the same."""
    import shutil

    from sqlalchemy import create_engine, text

    copy = tmp_path / "ws"
    shutil.copytree(demo_ws, copy)
    _, before = _inputs(copy)
    engine = create_engine(f"sqlite:///{copy / 'medreview.db'}")
    with engine.begin() as conn:
        n = conn.execute(text(
            "UPDATE cases SET error_type = CASE error_type WHEN 'none' THEN 'treatment_mismatch' "
            "ELSE 'none' END, severity = 'moderate', meta = '{\"shown_finding\": \"scrambled\"}' "
            "WHERE split != 'test'"
        )).rowcount  # fmt: skip
    engine.dispose()
    assert n > 0
    _, after = _inputs(copy)
    assert before.judgements and before.gold and before.pairs and before.prompts
    for field in ("pairs", "flipped", "gold", "judgements", "prompts", "left_out"):
        assert getattr(before, field) == getattr(after, field), field
    assert all(c.error_type is None and c.meta == {} for c in after.prompts)
    assert before.fingerprint() == after.fingerprint()


def test_multi_line_fields_and_dicom_and_tiff_ratings_reach_the_trainer_unchanged(tmp_path):
    import numpy as np
    import pydicom
    from PIL import Image
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from app.workspace import Workspace
    from core.clinical.prompts import build_prompt
    from feedback_db import CaseIn, PredictionIn, RatingIn, open_store
    from tests.feedback_db.factory import seed

    ws = Workspace(tmp_path / "ws").ensure()
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientName = "Doe^Jane"
    ds.Rows, ds.Columns = 8, 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation, ds.SamplesPerPixel = 0, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = np.arange(64, dtype=np.uint16).reshape(8, 8).tobytes()
    ds.save_as(ws.root / "images" / "scan.dcm", enforce_file_format=True)
    Image.fromarray(np.full((8, 8), 90, dtype=np.uint8)).save(ws.root / "images" / "slide.tif")
    finding = "Pneumothorax\nright apex, 2 cm rim\n(no mediastinal shift)"
    treatment = "Chest tube insertion\nafter a CT"
    with open_store(ws.db_url) as store:
        s = seed(store, ws.root)
        store.add_cases([
            CaseIn("c-dcm", "xray", "images/scan.dcm", finding, treatment, split="review"),
            CaseIn("c-tif", "histopathology", "images/slide.tif", "Benign tissue\nwith normal nuclei",
                   "Routine surveillance", split="review"),
        ])  # fmt: skip
        for cid in ("c-dcm", "c-tif"):
            store.add_predictions(
                "base", [PredictionIn(cid, "CORRECT", "fits", "CORRECT - fits", 0.6)]
            )
            store.add_predictions("v2", [PredictionIn(cid, "ERROR", "no", "ERROR - no", 0.6)])
            a, b = store.predictions_for_case(cid)[-2:]
            first = "a" if a.label == "CORRECT" else "b"
            store.add_rating(RatingIn(cid, s.reviewer.id, a.id, b.id, first, "CORRECT"))
    inputs, data = _inputs(ws.root)
    assert {"c-dcm", "c-tif"} <= set(data.judgements)
    gold = {c.case_id: (c, t) for c, t in data.gold}
    dcm, text = gold["c-dcm"]
    assert (dcm.finding, dcm.treatment) == (finding, treatment) and text == "CORRECT - fits"
    assert dcm.image == str(ws.root / "images" / "scan.dcm")  # the image the model saw
    assert gold["c-tif"][0].finding == "Benign tissue\nwith normal nuclei"
    assert finding in build_prompt(dcm) and treatment in build_prompt(dcm)
    rows = [json.loads(x) for x in inputs.feedback.read_text().splitlines()]
    assert {"c-dcm", "c-tif"} <= {r["case_id"] for r in rows}  # not dropped by the export
