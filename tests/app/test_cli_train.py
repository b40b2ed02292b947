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


@pytest.fixture(scope="module")
def demo_ws(tmp_path_factory) -> Path:
    import torch

    from app.cli.benchmark import simulate_reviews
    from app.convert import case_in_from_case
    from app.versions import mirror_card, store_verdicts
    from core.demo import generate_demo
    from core.models.demo_train import DemoTrainConfig, train_demo_models
    from core.registry import Registry
    from feedback_db import open_store

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("train-ws")
    for d in ("models", "runs", "images", "exports"):
        (root / d).mkdir(exist_ok=True)
    cases = generate_demo(root, seed=1, n_cases=40)
    if not any(c.split == "review" for c in cases):  # the cases clinicians rate, none trained on
        from dataclasses import replace

        cases = [replace(c, split="review") if c.split == "train" and i % 2 else c for i, c in enumerate(cases)]
    cfg = DemoTrainConfig(clip_steps=10, lm_steps=20)
    cards = train_demo_models(cases, root / "models", config=cfg, image_root=str(root))
    registry = Registry(root / "models")
    with open_store(f"sqlite:///{root / 'medreview.db'}") as store:
        store.add_cases(case_in_from_case(c) for c in cases)
        for i, card in enumerate(cards):
            backend = registry.load_backend(card.name, device="cpu", image_root=str(root))
            mirror_card(store, card, active=i == 1)
            store_verdicts(store, card.name, cases, backend.predict(cases, batch_size=16))
        assert simulate_reviews(store, cards[0].name, cards[1].name) > 0
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
         "--steps", "2", "--epochs", "1", "--batch-size", "4", "--name", "rl-1", "--device", "cpu"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = _lines(proc.stdout)  # every stdout line is one of our JSON objects
    assert set(events[0]) == {"stage", "step", "total", "loss", "reward", "kl", "eta_s", "message"}
    stages = [e["stage"] for e in events]
    assert {"export", "reward", "ppo", "evaluate", "register"} <= set(stages)
    assert stages[-1] == "done" and "rl-1" in events[-1]["message"]
    ppo = [e for e in events if e["stage"] == "ppo" and e["step"] > 0]
    assert ppo and all(e["kl"] is not None and e["reward"] is not None for e in ppo)

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
         "--device", "cpu"],
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
def test_benchmark_quick_prints_the_plan_table(tmp_path):
    out = tmp_path / "table.json"
    proc = subprocess.run(
        [*CLI, "benchmark", "--quick", "--workspace", str(tmp_path / "ws"), "--json", str(out),
         "--progress", "none"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [r["phase"] for r in rows] == [
        "text heuristic", "+ vision (clip-llm demo)", "+ LoRA SFT", "+ reward model and PPO",
    ]  # fmt: skip
    assert all(0.0 <= r["accuracy"] <= 1.0 and r["n"] == rows[0]["n"] for r in rows)
    assert "text heuristic" in proc.stdout


def _kill_at(demo_ws: Path, stage: str, when) -> None:
    """Start a retrain and kill -9 it at the first progress line that ``when`` accepts."""
    proc = subprocess.Popen(
        [*CLI, "train", "retrain", "--workspace", str(demo_ws), "--progress", "json",
         "--steps", "2", "--epochs", "1", "--batch-size", "4", "--device", "cpu"],
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
        assert len(mid["folders"]) == len(before["folders"]) + 1  # an orphan the store does not know
    done = reconcile(Workspace(demo_ws))
    after = _snapshot(demo_ws)
    assert done.runs_closed == [mid["runs"][-1][0]]
    assert after["runs"][-1][1] == "killed" and after["runs"][:-1] == before["runs"]
    assert after["folders"] == before["folders"] and after["versions"] == before["versions"]
    assert after["runs_dir"] == []
    with open_store(f"sqlite:///{demo_ws / 'medreview.db'}") as store:
        store_names = {v.name for v in store.model_versions()}
    assert store_names <= set(after["folders"]) | {"heuristic"}
