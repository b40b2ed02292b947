"""Model files that cannot run code: safetensors only, card paths confined, the card hashed (issue 11).

Before: an upper-case ``.BIN`` passed the pickle check, a card's base-model path with ``../``
loaded a model from outside the version without hashes, and an edited card was accepted.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from core.models.registry import CARD_FILE, Registry, RegistryError, card_sha256, check_weights


def _version(
    reg: Registry,
    tmp_path: Path,
    name: str,
    backend: str = "heuristic",
    base: dict[str, str] | None = None,
    files: dict[str, bytes] | None = None,
) -> Path:
    src = tmp_path / f"build-{name}"
    src.mkdir()
    for rel, data in (files or {"notes.txt": b"hello"}).items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    reg.create_version(name, backend, base or {}, from_folder=src)
    return reg.root / name


@pytest.mark.parametrize(
    "name", ["adapter/PYTORCH_MODEL.BIN", "adapter/w.Pt", "weights.dat", "adapter/model.zip"]
)
def test_pickles_are_refused_in_any_case_and_by_content(tmp_path: Path, name: str) -> None:
    reg = Registry(tmp_path / "models")
    data = pickle.dumps({"w": 1}) if not name.endswith(".zip") else b"PK\x03\x04torch zip"
    with pytest.raises(RegistryError, match="pickle"):
        _version(reg, tmp_path, "v1", files={name: data})
    folder = _version(reg, tmp_path, "v2")
    (folder / "adapter").mkdir(exist_ok=True)
    (folder / name).write_bytes(data)  # slipped in after registration
    with pytest.raises(RegistryError, match="pickle"):
        reg.verify("v2")


def test_a_safetensors_header_that_looks_like_a_pickle_opcode_is_not_refused(
    tmp_path: Path,
) -> None:
    header = b'{"__metadata__":{}}'.ljust(0x0280, b" ")  # length 0x280: first bytes 0x80 0x02
    data = len(header).to_bytes(8, "little") + header
    assert data[:2] == b"\x80\x02"
    reg = Registry(tmp_path / "models")
    _version(reg, tmp_path, "v1", files={"adapter/adapter_model.safetensors": data})
    reg.verify("v1")


def test_an_edited_card_is_refused_at_load_against_the_recorded_hash(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models")
    folder = _version(reg, tmp_path, "v1", files={"adapter/adapter_model.safetensors": b"x" * 16})
    recorded = {"v1": card_sha256(reg.card("v1"))}
    trusting = Registry(tmp_path / "models", card_hashes=recorded.get)
    trusting.verify("v1")
    reg.set_metrics("v1", {"accuracy": 0.9})  # evaluation rewrites metrics: not a tamper
    trusting.verify("v1")
    # Swap the weights and edit the card's hash to match: the file check passes, the card's fails.
    (folder / "adapter" / "adapter_model.safetensors").write_bytes(b"evil" * 4)
    card = json.loads((folder / CARD_FILE).read_text())
    from core.models.registry import sha256_file

    card["files"]["adapter/adapter_model.safetensors"] = sha256_file(
        folder / "adapter" / "adapter_model.safetensors"
    )
    (folder / CARD_FILE).write_text(json.dumps(card))
    reg.verify("v1")  # without the recorded hash, the edit would pass
    with pytest.raises(RegistryError, match="was changed after it was registered"):
        trusting.verify("v1")
    with pytest.raises(RegistryError, match="was changed after it was registered"):
        trusting.load_backend("v1", device="cpu")


@pytest.mark.parametrize("ref", ["../outside", "base/../../outside", "/definitely/elsewhere"])
def test_card_paths_outside_the_version_and_the_cache_are_refused(tmp_path: Path, ref: str) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "config.json").write_text("{}")
    (tmp_path / "outside" / "model.safetensors").write_bytes(b"\0" * 16)
    reg = Registry(tmp_path / "models")
    _version(reg, tmp_path, "v1", backend="vlm", base={"vlm": ref})
    with pytest.raises(RegistryError, match="outside the version"):
        reg.load_backend("v1", device="cpu")


def _cached_model(cache: Path, repo: str, files: dict[str, bytes]) -> Path:
    """A Hugging Face cache entry laid out as huggingface_hub writes it."""
    entry = cache / ("models--" + repo.replace("/", "--"))
    snapshot = entry / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text("0123abcd")
    for name, data in files.items():
        (snapshot / name).write_bytes(data)
    return snapshot


def test_pickle_only_base_models_are_refused_from_the_cache_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    cache = tmp_path / "hf"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    snapshot = _cached_model(
        cache, "acme/pickled", {"config.json": b"{}", "pytorch_model.bin": pickle.dumps(1)}
    )
    safe = _cached_model(
        cache,
        "acme/safe",
        {
            "config.json": b"{}",
            "model.safetensors": b"\0" * 16,
            "pytorch_model.bin": pickle.dumps(1),
        },
    )
    with pytest.raises(RegistryError, match="only pickle weights"):
        check_weights(snapshot, "acme/pickled")
    check_weights(
        safe, "acme/safe"
    )  # safetensors beside a pickle: the loaders take the safetensors
    (tmp_path / "models").mkdir()
    reg = Registry(tmp_path / "models")
    for name, ref in (("by-id", "acme/pickled"), ("by-path", str(snapshot))):
        _version(reg, tmp_path, name, backend="vlm", base={"vlm": ref})
        with pytest.raises(RegistryError, match="only pickle weights"):
            reg.load_backend(name, device="cpu")
    _version(reg, tmp_path, "safe", backend="vlm", base={"vlm": "acme/safe"})
    assert reg.base_source("safe", "vlm", "acme/safe") == "acme/safe"
    assert reg.base_source("safe", "vlm", str(safe)) == str(safe)  # a folder inside the cache
