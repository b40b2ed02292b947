"""Where model weights come from, offline: a local folder or the Hugging Face cache, never the net.

``resolve_model(model_id, files)`` returns a folder (or the cached id) that ``from_pretrained``
can load with no network, or raises ``ModelNotAvailable`` at once (a filesystem check, no
connection attempt) naming the id and saying how to provide it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

HF_HUB_PREFIX = "hf-hub:"


class ModelNotAvailable(RuntimeError):
    """The weights of ``model_id`` are not on this machine; ``hint`` says how to provide them."""

    def __init__(self, model_id: str, hint: str) -> None:
        self.model_id = model_id
        self.hint = hint
        super().__init__(f"model {model_id!r} is not available on this machine. {hint}")


def offline() -> None:
    """Set ``HF_HUB_OFFLINE=1`` unless the user set it, so a missing model fails fast."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def download_hint(repo_id: str) -> str:
    """The words that tell a user how to get ``repo_id`` onto this machine."""
    return (
        f"On a machine with network access run `hf download {repo_id}` (or the older "
        f"`huggingface-cli download {repo_id}`) and copy the Hugging Face cache "
        f"(~/.cache/huggingface/hub, or $HF_HOME) here; or pass the path of a local folder that "
        f"holds the model's files instead of the id."
    )


def looks_like_path(model_id: str) -> bool:
    return (
        model_id.startswith(("/", ".", "~"))
        or os.sep in model_id.replace("/", "", 1)
        or (len(model_id) > 1 and model_id[1] == ":")
    )


def resolve_model(model_id: str, required: Sequence[str] = ("config.json",)) -> str:
    """A loadable source for ``model_id`` with no network: a folder path.

    Args:
        model_id: a Hugging Face repo id (``google/medgemma-4b-it``), optionally with the
            ``hf-hub:`` prefix open_clip uses, or a local folder.
        required: files the model needs; the first one must be present (the config).

    Raises:
        ModelNotAvailable: a folder that does not exist or lacks the files; an id not in the cache.
    """
    offline()
    raw = model_id[len(HF_HUB_PREFIX) :] if model_id.startswith(HF_HUB_PREFIX) else model_id
    folder = Path(raw).expanduser()
    if folder.is_dir():
        missing = [f for f in required if not (folder / f).exists()]
        if missing:
            raise ModelNotAvailable(
                model_id, f"The folder {folder} exists but lacks {', '.join(missing)}."
            )
        return str(folder.resolve())
    if looks_like_path(raw) or raw.count("/") != 1:
        raise ModelNotAvailable(
            model_id,
            f"There is no folder {folder}. Pass a Hugging Face repo id (owner/name) in the "
            f"local cache, or an existing folder.",
        )
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(raw, required[0]) if required else None
    if not isinstance(found, str):
        raise ModelNotAvailable(model_id, download_hint(raw))
    snapshot = Path(found).parent
    missing = [f for f in required[1:] if not (snapshot / f).exists()]
    if missing:
        raise ModelNotAvailable(
            model_id, f"The cached copy lacks {', '.join(missing)}. " + download_hint(raw)
        )
    return str(snapshot)
