"""The one table of back ends (``core.models.backends.BACKENDS``): every row names a real class
and config, and the registry builds every back end from it, with no list of names of its own."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

from core.models.backends import BACKENDS, backend_names, backend_spec, base_model_slots
from core.models.backends.base import Backend, TrainablePolicy
from core.models.registry import Registry, RegistryError

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_row_names_its_class_config_and_base_models(name: str) -> None:
    spec = BACKENDS[name]
    cls = spec.load_class()
    assert issubclass(cls, Backend) and cls.name == name
    assert spec.title and spec.summary and "\n" not in spec.summary
    # "trainable" is what the trainers need: the TrainablePolicy methods.
    trainable = all(
        callable(getattr(cls, m, None))
        for m in ("encode", "generate", "save_adapter", "load_adapter")
    )
    assert trainable == spec.trainable
    config = spec.load_config_class()
    assert (config is not None) == spec.needs_weights == bool(spec.base_models)
    if config is not None:
        assert is_dataclass(config)
        names = {f.name for f in fields(config)}
        for slot in spec.base_models:
            assert slot.field in names, (
                f"{name}: base model {slot.key!r} fills no field of {config.__name__}"
            )
            assert slot.used_if is None or slot.used_if in names
            if slot.check is not None:
                module, _, attr = slot.check.partition(":")
                assert callable(getattr(__import__(module, fromlist=[attr]), attr))
    else:
        assert spec.source, "a built-in back end says what its version records as its base model"


def test_a_base_model_key_means_the_same_model_in_every_row() -> None:
    slots = base_model_slots()
    for spec in BACKENDS.values():
        for slot in spec.base_models:
            assert slots[slot.key].marker == slot.marker and slots[slot.key].label == slot.label


def test_names_by_kind_and_unknown_names() -> None:
    assert set(backend_names()) == set(BACKENDS)
    assert set(backend_names(needs_weights=True)) | set(backend_names(needs_weights=False)) == set(
        BACKENDS
    )
    assert "vlm" in backend_names(needs_weights=True) and "heuristic" in backend_names(
        needs_weights=False
    )
    with pytest.raises(ValueError, match="unknown back end 'nope'; expected one of heuristic"):
        backend_spec("nope")


def test_the_table_is_read_without_the_ml_stack() -> None:
    """The window and ``medreview --help`` read the table; it must not import torch and co."""
    code = (
        "import sys, core.models.backends as b; b.base_model_slots(); b.backend_names(); "
        "print(sorted(m for m in ('torch', 'transformers', 'open_clip', 'peft', 'trl') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_registry_builds_each_back_end_from_its_row(tmp_path: Path) -> None:
    """A version of each back end that loads weights is built by the table's row alone: the
    card's settings reach the config, its base models the fields the row names; a card whose
    back end is not in the table is refused in words."""
    from core.demo.lm import build_demo_causal_lm

    work = tmp_path / "runs" / "v"
    build_demo_causal_lm(work / "base" / "lm")
    reg = Registry(tmp_path / "models")
    reg.create_version("text-only", "clip-llm", {"lm": "base/lm"}, from_folder=work,
                       settings={"describe_image": False, "max_new_tokens": 7, "not_a_field": 1})  # fmt: skip
    backend = reg.load_backend("text-only", device="cpu")
    assert isinstance(backend, BACKENDS["clip-llm"].load_class()) and isinstance(
        backend, TrainablePolicy
    )
    assert backend.config.max_new_tokens == 7 and backend.config.describe_image is False
    assert backend.config.lm_model == str(reg.path("text-only") / "base" / "lm")

    work = tmp_path / "runs" / "w"
    work.mkdir(parents=True)
    (work / "rules.txt").write_text("x", encoding="utf-8")
    reg.create_version("rules", "heuristic", {}, from_folder=work)
    assert type(reg.load_backend("rules")).name == "heuristic"

    work = tmp_path / "runs" / "u"
    work.mkdir(parents=True)
    (work / "x.txt").write_text("x", encoding="utf-8")
    reg.create_version("alien", "telepathy", {}, from_folder=work)
    with pytest.raises(
        RegistryError, match="unknown back end 'telepathy' \\(this program knows heuristic"
    ):
        reg.load_backend("alien")
