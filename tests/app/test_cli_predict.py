"""``medreview predict`` on a real workspace: store, registry, a tiny clip-llm version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.cli.main import main
from app.convert import case_in_from_case
from core.demo.clip import build_demo_clip
from core.demo.lm import build_demo_causal_lm
from core.models.registry import Registry
from feedback_db import open_store
from tests.core._phantoms import make_cases


@pytest.fixture(scope="module")
def base_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("base")
    build_demo_clip(root / "base" / "clip")
    build_demo_causal_lm(root / "base" / "lm")
    return root


def make_workspace(root: Path, base_models: Path) -> list:
    cases = make_cases(root / "images", n=6, split="test")
    # store image paths relative to the workspace, as imports do
    cases = [
        c.__class__(**{**c.to_dict(), "image": str(Path(c.image).relative_to(root))}) for c in cases
    ]
    with open_store(f"sqlite:///{root / 'medreview.db'}") as store:
        store.add_cases([case_in_from_case(c) for c in cases])
    src = root / "runs" / "tiny"
    shutil.copytree(base_models / "base", src / "base")
    Registry(root / "models").create_version(
        "tiny",
        "clip-llm",
        {"clip": "base/clip", "lm": "base/lm"},
        from_folder=src,
        settings={"max_new_tokens": 4},
    )
    return cases


def test_predict_saves_verdicts_in_the_store(
    tmp_path: Path, base_models: Path, capsys: pytest.CaptureFixture
) -> None:
    cases = make_workspace(tmp_path, base_models)
    out = tmp_path / "v.jsonl"
    code = main(["predict", "--workspace", str(tmp_path), "--version", "tiny", "--device", "cpu",
                 "--batch-size", "4", "--out", str(out), "--progress", "none"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert "on cpu (float32)" in err
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["case_id"] for x in lines] == sorted(c.case_id for c in cases)
    with open_store(f"sqlite:///{tmp_path / 'medreview.db'}") as store:
        assert store.get_model_version("tiny").backend == "clip-llm"
        preds = store.predictions_for_version("tiny", split="test")
    assert set(preds) == {c.case_id for c in cases}
    # The file and the store hold the same verdicts, and they are the version's own answers:
    # the registered model, loaded directly, writes the same texts (greedy decoding).
    stored = {cid: (p.label, p.text, p.confidence) for cid, p in preds.items()}
    assert {x["case_id"]: (x["label"], x["text"], x["confidence"]) for x in lines} == stored
    backend = Registry(tmp_path / "models").load_backend(
        "tiny", device="cpu", image_root=str(tmp_path)
    )
    direct = backend.predict(sorted(cases, key=lambda c: c.case_id))
    assert [(x["label"], x["text"]) for x in lines] == [(v.label.value, v.text) for v in direct]


def test_predict_reports_missing_images_and_exits_1(
    tmp_path: Path, base_models: Path, capsys: pytest.CaptureFixture
) -> None:
    cases = make_workspace(tmp_path, base_models)
    (tmp_path / cases[0].image).unlink()
    code = main(
        [
            "predict",
            "--workspace",
            str(tmp_path),
            "--version",
            "tiny",
            "--device",
            "cpu",
            "--progress",
            "none",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert f"{cases[0].case_id}: image not found" in err


def test_heuristic_needs_no_registry(
    tmp_path: Path, base_models: Path, capsys: pytest.CaptureFixture
) -> None:
    make_workspace(tmp_path, base_models)
    assert (
        main(
            [
                "predict",
                "--workspace",
                str(tmp_path),
                "--version",
                "heuristic",
                "--progress",
                "none",
            ]
        )
        == 0
    )
    with open_store(f"sqlite:///{tmp_path / 'medreview.db'}") as store:
        assert len(store.predictions_for_version("heuristic")) == 6


def test_unknown_version_and_missing_weights_are_clear(
    tmp_path: Path, base_models: Path, capsys: pytest.CaptureFixture
) -> None:
    make_workspace(tmp_path, base_models)
    assert (
        main(["predict", "--workspace", str(tmp_path), "--version", "nope", "--progress", "none"])
        == 2
    )
    assert "no model version 'nope'" in capsys.readouterr().err
    src = tmp_path / "runs" / "real"
    src.mkdir(parents=True)
    Registry(tmp_path / "models").create_version(
        "real", "vlm", {"vlm": "google/medgemma-4b-it"}, from_folder=src
    )
    assert (
        main(["predict", "--workspace", str(tmp_path), "--version", "real", "--progress", "none"])
        == 2
    )
    err = capsys.readouterr().err
    assert "google/medgemma-4b-it" in err and "hf download google/medgemma-4b-it" in err


def test_no_workspace(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["predict", "--workspace", str(tmp_path / "none"), "--version", "x"]) == 2
    assert "no workspace" in capsys.readouterr().err


def test_manifest_needs_no_store(
    tmp_path: Path, base_models: Path, capsys: pytest.CaptureFixture
) -> None:
    ws = tmp_path / "ws"
    src = ws / "runs" / "tiny"
    shutil.copytree(base_models / "base", src / "base")
    Registry(ws / "models").create_version(
        "tiny",
        "clip-llm",
        {"clip": "base/clip", "lm": "base/lm"},
        from_folder=src,
        settings={"max_new_tokens": 4},
    )
    cases = make_cases(tmp_path / "m" / "img", n=3)
    rows = [{k: v for k, v in c.to_dict().items() if k not in ("meta", "case_id")} for c in cases]
    rows[1]["image"] = str(tmp_path / "m" / "missing.png")
    manifest = tmp_path / "m" / "cases.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code = main(["predict", "--workspace", str(ws), "--version", "tiny", "--manifest", str(manifest),
                 "--device", "cpu", "--progress", "none"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1, err
    assert "cases.jsonl:2" in err
    lines = [json.loads(x) for x in out.splitlines()]
    assert len(lines) == 2  # the row with no image left out
    direct = (
        Registry(ws / "models").load_backend("tiny", device="cpu").predict([cases[0], cases[2]])
    )
    assert [(x["label"], x["text"]) for x in lines] == [(v.label.value, v.text) for v in direct]
    assert not (ws / "medreview.db").exists()
