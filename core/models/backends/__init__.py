"""Model back ends behind one interface: ``predict(cases) -> verdicts``, batched, with progress.

``heuristic`` (text only), ``clip-llm`` (open_clip image encoder + causal LM) and ``vlm`` (a native
image-text-to-text model). ``get_backend_class(name)`` imports the one asked for, lazily.
"""

from __future__ import annotations

import importlib

BACKENDS: dict[str, str] = {
    "heuristic": "core.models.backends.heuristic:HeuristicBackend",
    "clip-llm": "core.models.backends.clip_llm:ClipLLMBackend",
    "vlm": "core.models.backends.vlm:VLMBackend",
}


def get_backend_class(name: str) -> type:
    """The back end class registered as ``name``.

    Raises:
        ValueError: no back end of that name.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown back end {name!r}; expected one of {', '.join(BACKENDS)}")
    module, _, attr = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
