"""The model registry: cards, hashes, atomic creation, safetensors only, missing weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.models.hub import ModelNotAvailable, resolve_model
from core.models.registry import CARD_FILE, Registry, RegistryError

ROOT = Path(__file__).resolve().parents[3]


def _folder(tmp_path: Path, name: str = "run") -> Path:
    d = tmp_path / "runs" / name
    (d / "adapter").mkdir(parents=True)
    (d / "adapter" / "adapter_model.safetensors").write_bytes(b"weights")
    (d / "adapter" / "adapter_config.json").write_text("{}")
    return d


def test_create_list_card_path(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models")
    assert reg.list() == []
    src = _folder(tmp_path)
    card = reg.create_version(
        "v1",
        "heuristic",
        {"lm": "x/y"},
        from_folder=src,
        training={"lr": 1e-4},
        settings={"top_k": 2},
    )
    assert not src.exists()  # moved, not copied
    assert reg.path("v1") == tmp_path / "models" / "v1"
    assert card.created_at.endswith("Z") and set(card.files) == {
        "adapter/adapter_model.safetensors",
        "adapter/adapter_config.json",
    }
    assert reg.card("v1") == card
    on_disk = json.loads((reg.path("v1") / CARD_FILE).read_text())
    assert on_disk["backend"] == "heuristic" and on_disk["training"] == {"lr": 0.0001}
    reg.create_version("v2", "heuristic", {}, from_folder=_folder(tmp_path, "b"), parent="v1")
    assert [c.name for c in reg.list()] == ["v1", "v2"]
    assert reg.card("v2").parent == "v1"
    new = reg.set_metrics("v2", {"accuracy": 0.9})
    assert reg.card("v2").metrics == {"accuracy": 0.9} and new.files == reg.card("v2").files
    reg.verify("v2")


def test_bad_creations_are_refused(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models")
    reg.create_version("v1", "heuristic", {}, from_folder=_folder(tmp_path))
    with pytest.raises(RegistryError, match="already exists"):
        reg.create_version("v1", "heuristic", {}, from_folder=_folder(tmp_path, "c"))
    with pytest.raises(RegistryError, match="not a valid version name"):
        reg.create_version("../evil", "heuristic", {}, from_folder=_folder(tmp_path, "d"))
    with pytest.raises(RegistryError, match="no model version 'nope'"):
        reg.create_version("v3", "heuristic", {}, from_folder=_folder(tmp_path, "e"), parent="nope")
    pk = _folder(tmp_path, "f")
    (pk / "adapter" / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(RegistryError, match="pickle"):
        reg.create_version("v4", "heuristic", {}, from_folder=pk)
    assert [c.name for c in reg.list()] == ["v1"]


def test_tampered_or_pickled_versions_are_refused_on_load(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models")
    reg.create_version("v1", "heuristic", {}, from_folder=_folder(tmp_path))
    assert reg.load_backend("v1").name == "heuristic"
    w = reg.path("v1") / "adapter" / "adapter_model.safetensors"
    w.write_bytes(b"tampered")
    with pytest.raises(RegistryError, match="changed adapter/adapter_model.safetensors"):
        reg.load_backend("v1")
    w.unlink()
    with pytest.raises(RegistryError, match="missing adapter/adapter_model.safetensors"):
        reg.verify("v1")
    (reg.path("v1") / "extra.pt").write_bytes(b"x")
    with pytest.raises(RegistryError, match="pickle"):
        reg.verify("v1")


def test_unknown_version_names_the_known_ones(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models")
    reg.create_version("only", "heuristic", {}, from_folder=_folder(tmp_path))
    with pytest.raises(RegistryError, match=r"known: only"):
        reg.card("other")


@pytest.mark.parametrize(
    "model_id",
    [
        "medreview-test/no-such-model-7f3a",
        "google/medgemma-4b-it",
        "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
        "google/gemma-3-1b-it",
    ],
)
def test_missing_weights_fail_fast_with_the_fix(model_id: str) -> None:
    with pytest.raises(ModelNotAvailable) as info:
        resolve_model(model_id)
    msg = str(info.value)
    repo = model_id.removeprefix("hf-hub:")
    assert info.value.model_id == model_id and repr(model_id) in msg
    assert f"hf download {repo}" in msg and f"huggingface-cli download {repo}" in msg
    assert "local folder" in msg


def test_missing_folder_and_incomplete_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailable, match="There is no folder"):
        resolve_model(str(tmp_path / "absent"))
    (tmp_path / "half").mkdir()
    with pytest.raises(ModelNotAvailable, match="lacks config.json"):
        resolve_model(str(tmp_path / "half"))


def test_back_ends_with_real_default_ids_fail_fast_in_a_fresh_process(tmp_path: Path) -> None:
    """The real defaults are not cached here: constructing each back end raises at once."""
    code = (
        "from core.models.backends.clip_llm import ClipLLMBackend\n"
        "from core.models.backends.vlm import VLMBackend\n"
        "from core.models.hub import ModelNotAvailable\n"
        "for make in (ClipLLMBackend, VLMBackend):\n"
        "    try:\n"
        "        make()\n"
        "    except ModelNotAvailable as e:\n"
        "        print('MISSING', e.model_id)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf")}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "MISSING google/gemma-3-1b-it" in out.stdout
    assert "MISSING google/medgemma-4b-it" in out.stdout
