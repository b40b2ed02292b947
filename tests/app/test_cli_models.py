"""``medreview models``: register a real model (cache id or folder) as a version, offline; choose
the active version by hand."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.cli.main import main
from app.convert import case_in_from_case
from core.demo.clip import build_demo_clip
from core.demo.lm import build_demo_causal_lm
from core.models.registry import Registry, card_sha256
from feedback_db import open_store
from tests.core._phantoms import make_cases


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    cases = make_cases(root / "images", n=4, split="test")
    cases = [
        c.__class__(**{**c.to_dict(), "image": str(Path(c.image).relative_to(root))}) for c in cases
    ]
    with open_store(f"sqlite:///{root / 'medreview.db'}") as store:
        store.add_cases([case_in_from_case(c) for c in cases])
    return root


def test_missing_real_model_is_refused_with_the_way_to_provide_it(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "models",
            "add",
            "medgemma",
            "--backend",
            "vlm",
            "--vlm",
            "google/medgemma-4b-it",
            "--workspace",
            str(ws),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "google/medgemma-4b-it" in err and "hf download google/medgemma-4b-it" in err
    assert not (ws / "models" / "medgemma").exists()
    with open_store(f"sqlite:///{ws / 'medreview.db'}") as store:
        assert store.get_model_version("medgemma") is None


def test_folder_models_become_a_version_that_predicts(
    ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = build_demo_clip(tmp_path / "my-clip")
    lm = build_demo_causal_lm(tmp_path / "my-lm")
    rc = main(["models", "add", "mine", "--backend", "clip-llm", "--clip", str(clip), "--lm", str(lm),
               "--workspace", str(ws), "--activate"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    card = Registry(ws / "models").card("mine")
    # Folders are copied into the version, so their files are hashed on the card (issue 11).
    assert card.base_models == {"clip": "base/clip", "lm": "base/lm"}
    assert any(f.startswith("base/lm/") and f.endswith(".safetensors") for f in card.files)
    with open_store(f"sqlite:///{ws / 'medreview.db'}") as store:
        assert store.get_model_version("mine").card_sha256 == card_sha256(card)
    assert main(["models", "list", "--workspace", str(ws)]) == 0
    assert "* mine" in capsys.readouterr().out

    assert main(["predict", "--version", "mine", "--split", "test", "--workspace", str(ws)]) == 0
    with open_store(f"sqlite:///{ws / 'medreview.db'}") as store:
        preds = store.predictions_for_version("mine")
        assert len(preds) == 4
        assert {p.label for p in preds.values()} <= {"ERROR", "CORRECT", "UNPARSEABLE"}
        assert store.active_version().name == "mine"

    # the same name twice is refused, and nothing changes
    rc = main(
        [
            "models",
            "add",
            "mine",
            "--backend",
            "clip-llm",
            "--clip",
            str(clip),
            "--lm",
            str(lm),
            "--workspace",
            str(ws),
        ]
    )
    assert rc == 2 and "already exists" in capsys.readouterr().err


def test_decoding_is_a_setting_the_version_loads_with(
    ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lm = build_demo_causal_lm(tmp_path / "my-lm")
    rc = main(["models", "add", "both", "--backend", "clip-llm", "--no-image", "--lm", str(lm),
               "--decoding", "verdict_branches", "--workspace", str(ws)])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    registry = Registry(ws / "models")
    assert registry.card("both").settings["decoding"] == "verdict_branches"
    assert registry.load_backend("both", device="cpu").decoding == "verdict_branches"
    assert main(["models", "add", "plain", "--backend", "clip-llm", "--no-image", "--lm", str(lm),
                 "--workspace", str(ws)]) == 0  # fmt: skip
    assert "decoding" not in registry.card("plain").settings
    assert registry.load_backend("plain", device="cpu").decoding == "greedy"
    with pytest.raises(SystemExit):
        main(["models", "add", "x", "--backend", "clip-llm", "--decoding", "beam"])
    assert "invalid choice: 'beam'" in capsys.readouterr().err


def test_a_pickle_only_folder_is_refused_and_pickles_beside_safetensors_are_left_out(
    ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pickle

    bad = tmp_path / "pickled-lm"
    bad.mkdir()
    (bad / "config.json").write_text("{}")
    (bad / "pytorch_model.bin").write_bytes(pickle.dumps({"w": 1}))
    rc = main(
        [
            "models",
            "add",
            "bad",
            "--backend",
            "clip-llm",
            "--no-image",
            "--lm",
            str(bad),
            "--workspace",
            str(ws),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "only pickle weights (pytorch_model.bin)" in err and "Traceback" not in err
    assert not (ws / "models" / "bad").exists()
    lm = build_demo_causal_lm(tmp_path / "my-lm")
    (lm / "pytorch_model.BIN").write_bytes(pickle.dumps({"w": 1}))
    rc = main(
        [
            "models",
            "add",
            "mixed",
            "--backend",
            "clip-llm",
            "--no-image",
            "--lm",
            str(lm),
            "--workspace",
            str(ws),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 0 and "pickle files not copied" in err
    assert not any(f.lower().endswith(".bin") for f in Registry(ws / "models").card("mixed").files)


def test_predict_refuses_a_card_edited_after_registration(
    ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    lm = build_demo_causal_lm(tmp_path / "my-lm")
    assert (
        main(
            [
                "models",
                "add",
                "text",
                "--backend",
                "clip-llm",
                "--no-image",
                "--lm",
                str(lm),
                "--workspace",
                str(ws),
            ]
        )
        == 0
    )
    card_path = ws / "models" / "text" / "model_card.json"
    card = json.loads(card_path.read_text())
    card["settings"]["describe_image"] = True  # any edit: here, one the file hashes do not cover
    card_path.write_text(json.dumps(card))
    capsys.readouterr()
    assert main(["predict", "--version", "text", "--split", "test", "--workspace", str(ws)]) == 2
    err = capsys.readouterr().err
    assert "was changed after it was registered" in err and "Traceback" not in err


def test_activate_puts_a_refused_version_into_use_and_says_what_the_gate_said(
    ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lm = build_demo_causal_lm(tmp_path / "my-lm")
    for name in ("first", "second"):
        assert main(["models", "add", name, "--backend", "clip-llm", "--no-image", "--lm",
                     str(lm), "--workspace", str(ws)] + (["--activate"] if name == "first" else [])) == 0  # fmt: skip
    reason = "not promoted (on 4 val cases against first): its mean clinical reward -0.50 is below"
    with open_store(f"sqlite:///{ws / 'medreview.db'}") as store:
        store.record_evaluation("second", {"accuracy": 0.5}, promoted=False, reason=reason)
        assert store.active_version().name == "first"
    capsys.readouterr()

    assert main(["models", "activate", "second", "--workspace", str(ws)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "second is now the active version (before: first)"
    assert err.strip() == f"note: the safety gate did not promote it: {reason}"
    with open_store(f"sqlite:///{ws / 'medreview.db'}") as store:
        assert store.active_version().name == "second"
        assert [v.name for v in store.model_versions() if v.active] == ["second"]
    assert main(["models", "activate", "second", "--workspace", str(ws)]) == 0
    assert "already the active version" in capsys.readouterr().out

    # an unknown name, or a version whose folder is gone: one sentence, nothing changes
    assert main(["models", "activate", "nope", "--workspace", str(ws)]) == 2
    err = capsys.readouterr().err
    assert "no model version 'nope'" in err and "first, second" in err and "Traceback" not in err
    shutil.rmtree(ws / "models" / "first")
    assert main(["models", "activate", "first", "--workspace", str(ws)]) == 2
    assert "has no folder" in capsys.readouterr().err
    with open_store(f"sqlite:///{ws / 'medreview.db'}") as store:
        assert store.active_version().name == "second"
