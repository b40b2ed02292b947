"""``medreview demo create``: a whole workspace or none, a cancel that leaves nothing, and demo
models built with portable numerics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli.main import main
from core.runtime.numerics import PORTABLE_ENV, portable_unavailable
from feedback_db import open_store

ROOT = Path(__file__).resolve().parents[2]


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".creating-" in p.name]


def test_creates_a_workspace_with_cases_and_heuristic_verdicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = tmp_path / "demo"
    assert main(["demo", "create", "--workspace", str(ws), "--cases", "24", "--skip-models"]) == 0
    with open_store(f"sqlite:///{ws / 'medreview.db'}") as store:
        ids = store.query_case_ids(order="id")
        assert len(ids) == 24
        assert len(store.predictions_for_version("heuristic")) == 24
        for rec in store.get_cases(ids[:3]):
            assert (ws / rec.image).is_file()
    assert _leftovers(tmp_path) == []
    # a second run refuses to mix a new demo into it, and changes nothing
    capsys.readouterr()
    assert main(["demo", "create", "--workspace", str(ws), "--cases", "24", "--skip-models"]) == 2
    assert "already holds cases" in capsys.readouterr().err
    with open_store(f"sqlite:///{ws / 'medreview.db'}") as store:
        assert len(store.query_case_ids(order="id")) == 24


def test_sigterm_during_training_leaves_no_workspace(tmp_path: Path) -> None:
    ws = tmp_path / "demo"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MEDREVIEW_TORCH_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli.main", "demo", "create", "--workspace", str(ws), "--cases", "24",
         "--progress", "json"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    events = []
    for line in proc.stdout:
        events.append(json.loads(line))
        if events[-1]["stage"].startswith("demo:") and events[-1]["step"] > 0:
            proc.send_signal(signal.SIGTERM)
            break
    rest = [json.loads(x) for x in proc.stdout.read().splitlines() if x.strip()]
    assert proc.wait(timeout=120) == 2
    assert rest and rest[-1]["stage"] == "canceled"
    assert not ws.exists()
    assert _leftovers(tmp_path) == []


@pytest.mark.skipif(portable_unavailable() is not None, reason="needs an x86-64 CPU with AVX2")
def test_demo_models_are_built_with_portable_numerics_and_the_card_says_so(tmp_path: Path) -> None:
    ws = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k not in PORTABLE_ENV}
    env.pop("MEDREVIEW_NUMERICS", None)  # a mark inherited from elsewhere would pass the test
    out = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "demo", "create", "--workspace", str(ws),
         "--cases", "24", "--quick"],
        cwd=ROOT, env={**env, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    card = json.loads((ws / "models" / "demo-quick" / "model_card.json").read_text("utf-8"))
    numerics = card["training"]["numerics"]
    assert numerics["mode"] == "portable"
    assert numerics["cpu_capability"] == "AVX2" and numerics["threads"] == 1
