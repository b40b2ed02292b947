"""Model back ends behind one interface: ``predict(cases) -> verdicts``, batched, with progress.

``BACKENDS`` is the one table of back ends. Everything that offers or builds a back end reads it:

- ``core.models.registry.Registry.load_backend`` builds a version's back end from its row (the
  class, its config class, which base models of the card fill which config fields);
- ``medreview models add --backend`` offers the rows that load weights, with one ``--<key>``
  option per base model; ``medreview predict --version`` runs the rows that need no weights
  under their own name (``heuristic``);
- the Settings dialog shows one "Add ..." button per row that loads weights, and one field per
  base model.

A new back end is its module here (a ``Backend`` subclass and, if it loads weights, a config
dataclass) and one row below; nothing else names it. The table names classes as
``"module:Class"`` text and imports them only when asked (``BackendSpec.load_class``), so the
window and ``medreview --help`` read it without importing torch, transformers or open_clip.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BaseModelSlot:
    """A base model a back end loads, as a version's card names it.

    ``key``: its key in the card's ``base_models`` (and the ``--<key>`` option of ``models add``);
    ``field``: the config field it fills; ``marker``: the file that marks its folder (the registry
    checks for it in the cache); ``label``: what a user calls it; ``used_if``: a boolean card
    setting (True when absent) without which the model is not loaded at all; ``check``: a
    ``"module:function"`` that ``models add`` calls on the id or folder to refuse, before
    registering, a model that needs more than its own folder (open_clip's text tower).
    """

    key: str
    field: str
    marker: str
    label: str
    used_if: str | None = None
    check: str | None = None

    def run_check(self, source: str) -> None:
        """Call ``check`` on ``source`` (nothing when there is none); raises what it raises."""
        if self.check is not None:
            _load(self.check)(source)


@dataclass(frozen=True)
class BackendSpec:
    """One back end: its name (on model cards and the command line), its class and config class
    as ``"module:Class"``, a one-line description and a short title for users, whether it loads
    weights (a version needs base models) and whether it can be trained (``TrainablePolicy``)."""

    name: str
    target: str
    title: str
    summary: str
    needs_weights: bool
    trainable: bool
    config: str | None = None
    base_models: tuple[BaseModelSlot, ...] = ()
    #: what a version of a built-in back end (no weights) records as its base model
    source: str = ""

    def load_class(self) -> type[Any]:
        """The back end class (imports its module now)."""
        return _load(self.target)  # type: ignore[no-any-return]

    def load_config_class(self) -> type[Any] | None:
        """The config dataclass, or None for a back end that takes no config."""
        return None if self.config is None else _load(self.config)  # type: ignore[no-any-return]

    def slot(self, key: str) -> BaseModelSlot | None:
        return next((s for s in self.base_models if s.key == key), None)


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


_CLIP = BaseModelSlot(
    "clip",
    "clip_model",
    "open_clip_config.json",
    "image encoder (open_clip)",
    used_if="describe_image",
    check="core.models.clip_scorer:open_clip_name",
)
_LM = BaseModelSlot("lm", "lm_model", "config.json", "language model")
_VLM = BaseModelSlot("vlm", "model", "config.json", "vision-language model")

BACKENDS: dict[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        BackendSpec(
            "heuristic",
            "core.models.backends.heuristic:HeuristicBackend",
            title="text heuristic",
            summary="text only: the knowledge table of finding -> acceptable treatments (the 79% baseline)",
            needs_weights=False,
            trainable=False,
            source="resources/knowledge.json",
        ),
        BackendSpec(
            "clip-llm",
            "core.models.backends.clip_llm:ClipLLMBackend",
            title="image encoder + language model",
            summary="an open_clip image encoder describes the image in the prompt of a causal language model",
            needs_weights=True,
            trainable=True,
            config="core.models.backends.clip_llm:ClipLLMConfig",
            base_models=(_CLIP, _LM),
        ),
        BackendSpec(
            "vlm",
            "core.models.backends.vlm:VLMBackend",
            title="vision-language model",
            summary="a native image-text-to-text model (e.g. MedGemma) that sees the image itself",
            needs_weights=True,
            trainable=True,
            config="core.models.backends.vlm:VLMConfig",
            base_models=(_VLM,),
        ),
    )
}


def backend_spec(name: str) -> BackendSpec:
    """The row of back end ``name``.

    Raises:
        ValueError: no back end of that name (the message lists the known ones).
    """
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"unknown back end {name!r}; expected one of {', '.join(BACKENDS)}"
        ) from None


def backend_names(*, needs_weights: bool | None = None) -> tuple[str, ...]:
    """The back ends' names in table order; only those that load weights (True) or not (False)."""
    return tuple(
        n for n, s in BACKENDS.items() if needs_weights is None or s.needs_weights == needs_weights
    )


def base_model_slots() -> dict[str, BaseModelSlot]:
    """Every base model key any back end loads, in table order (one field per key in Settings)."""
    out: dict[str, BaseModelSlot] = {}
    for spec in BACKENDS.values():
        for slot in spec.base_models:
            out.setdefault(slot.key, slot)
    return out


def get_backend_class(name: str) -> type[Any]:
    """The back end class registered as ``name``.

    Raises:
        ValueError: no back end of that name.
    """
    return backend_spec(name).load_class()
