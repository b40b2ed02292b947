"""The model registry: ``<workspace>/models/<version>/`` with a model card and safetensors weights.

Layout of a version folder::

    model_card.json   name, back end, base model ids, parent, training config, metrics,
                      creation time (UTC), settings, sha256 of every other file
    base/             demo base models saved whole (save_pretrained, safetensors) with their
                      tokenizer/processor files; real base models stay in the HF cache
    adapter/          LoRA adapter (peft, adapter_model.safetensors)
    encoder/          an image encoder the encoder stage fine-tuned (open_clip local-dir), in
                      place of the parent's; the card's ``clip`` base model names it
    reward_model/     the reward model, where training made one

Base model ids in the card are hub ids (found in the local Hugging Face cache), paths relative to
the version folder (``base/lm``), or paths inside the Hugging Face cache; any other path (``../``,
a folder elsewhere) is refused at load. Weights are safetensors only: a version holding pickle
files (.bin, .pt, .pth, .pkl, .ckpt, in any letter case, or any file that starts like a pickle or
a torch zip) is refused on creation and on load, a base model whose only weights are pickles is
refused at load, and every file's hash is checked before a back end is built. The card itself is
hashed too (``card_sha256``, everything but the metrics): the store records it at registration,
and a registry given the recorded hashes (``card_hashes``) refuses a card that changed since.
A version is created by moving a finished folder into place with one ``os.replace``, so a
half-written version never appears.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.models.backends import BACKENDS, backend_spec, base_model_slots
from core.models.backends.base import Backend
from core.runtime.files import atomic_write

CARD_FILE = "model_card.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class RegistryError(RuntimeError):
    """A version is missing, malformed, tampered with, or cannot be created; the message says which."""


@dataclass(frozen=True)
class ModelCard:
    """What a version is. ``files`` maps each path (relative, POSIX) to its sha256."""

    name: str
    backend: str
    base_models: dict[str, str]
    parent: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    created_at: str = ""
    files: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hash_tree(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` except the card, by relative POSIX path."""
    return {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != CARD_FILE
    }


# Config fields given by the machine that loads a version, never by its card.
_RUNTIME = frozenset({"adapter", "device", "image_root"})


def card_sha256(card: ModelCard) -> str:
    """The hash of what a card says a version is: everything but ``metrics`` (which evaluation
    rewrites), in canonical JSON. Recorded by the store at registration, checked at load."""
    body = {k: v for k, v in asdict(card).items() if k != "metrics"}
    text = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _looks_pickled(path: Path) -> bool:
    """A pickle (protocol 2-5 opcode) or a torch zip archive (``torch.save``), by its first bytes."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5) or head == b"PK\x03\x04"


def _pickles(folder: Path) -> list[str]:
    """Files under ``folder`` that could run code when loaded: pickle suffixes in any case, and
    any other file that starts like a pickle or a zip (safetensors, JSON and tokenizer files do
    not). Links are not followed."""
    found = []
    for p in sorted(folder.rglob("*")):
        if p.is_symlink() or not p.is_file():
            continue
        suffix = p.suffix.lower()
        # A safetensors header length can start with the bytes of a pickle opcode; such a file
        # is only ever parsed as safetensors, never unpickled.
        if suffix in PICKLE_SUFFIXES or (suffix != ".safetensors" and _looks_pickled(p)):
            found.append(p.relative_to(folder).as_posix())
    return found


def _hf_cache() -> Path:
    from huggingface_hub import constants

    return Path(os.path.realpath(constants.HF_HUB_CACHE))


def check_weights(folder: Path, what: str) -> None:
    """Refuse a base model folder whose weights are not safetensors.

    Raises:
        RegistryError: pickle files and no ``.safetensors`` file (a folder with both loads the
            safetensors: transformers and open_clip prefer them), or no weights at all.
    """
    names = [p for p in folder.rglob("*") if p.is_file()]
    if any(p.name.lower().endswith(".safetensors") for p in names):
        return
    pickles = [
        p.relative_to(folder).as_posix() for p in names if p.suffix.lower() in PICKLE_SUFFIXES
    ]
    if pickles:
        raise RegistryError(
            f"{what} at {folder} has only pickle weights ({', '.join(sorted(pickles)[:3])}), which "
            "could run code when loaded; refused. Convert them to safetensors on a trusted machine "
            "(transformers: model.save_pretrained(dir); open_clip: safetensors.torch.save_file("
            "model.state_dict(), 'open_clip_model.safetensors') beside open_clip_config.json) and "
            "register that folder"
        )
    raise RegistryError(f"{what} at {folder} holds no .safetensors weights; refused")


class Registry:
    """The versions under one ``models`` folder. Safe for readers in parallel with one writer."""

    def __init__(
        self,
        models_dir: str | os.PathLike[str],
        card_hashes: Callable[[str], str | None] | None = None,
    ) -> None:
        """``card_hashes(version)`` gives the card hash recorded when ``version`` was registered
        (the store's ``model_versions.card_sha256``), or None where none was recorded."""
        self.root = Path(models_dir)
        self.card_hashes = card_hashes

    def list(self) -> list[ModelCard]:
        """Every readable version, oldest first (unreadable folders are skipped, not fatal)."""
        cards = []
        if self.root.is_dir():
            for d in self.root.iterdir():
                if (d / CARD_FILE).is_file():
                    try:
                        cards.append(self.card(d.name))
                    except RegistryError:
                        continue
        return sorted(cards, key=lambda c: (c.created_at, c.name))

    def path(self, version: str) -> Path:
        """The folder of ``version``.

        Raises:
            RegistryError: no such version.
        """
        if not _NAME_RE.match(version):
            raise RegistryError(f"{version!r} is not a valid version name")
        p = self.root / version
        if not (p / CARD_FILE).is_file():
            known = ", ".join(c.name for c in self.list()) or "none"
            raise RegistryError(f"no model version {version!r} in {self.root} (known: {known})")
        return p

    def card(self, version: str) -> ModelCard:
        """The model card of ``version``.

        Raises:
            RegistryError: no such version, or its card is unreadable.
        """
        p = self.path(version) / CARD_FILE
        try:
            return ModelCard.from_dict(json.loads(p.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise RegistryError(f"{p}: unreadable model card: {exc}") from exc

    def verify(self, version: str) -> ModelCard:
        """Check the card of ``version`` against the hash recorded at registration (when the
        registry has ``card_hashes``), and its files against the card's hashes.

        Raises:
            RegistryError: the card changed, a file missing, changed, added, or a pickle file present.
        """
        card, folder = self.card(version), self.path(version)
        recorded = self.card_hashes(version) if self.card_hashes is not None else None
        if recorded is not None and recorded != card_sha256(card):
            raise RegistryError(
                f"the model card of version {version!r} ({folder / CARD_FILE}) was changed after it "
                "was registered (its hash is not the one this workspace recorded); refusing to load "
                "it. Restore the card or register the model again."
            )
        pickles = _pickles(folder)
        if pickles:
            raise RegistryError(
                f"version {version!r} holds pickle files, refused: {', '.join(pickles)}"
            )
        actual = hash_tree(folder)
        problems = [f"missing {f}" for f in card.files if f not in actual]
        problems += [
            f"changed {f}" for f, h in card.files.items() if f in actual and actual[f] != h
        ]
        problems += [f"unexpected {f}" for f in actual if f not in card.files]
        if problems:
            raise RegistryError(
                f"version {version!r} does not match its model card ({'; '.join(problems)}); "
                "refusing to load it. Restore the files or create the version again."
            )
        return card

    def create_version(
        self,
        name: str,
        backend: str,
        base_models: dict[str, str],
        *,
        from_folder: str | os.PathLike[str],
        parent: str | None = None,
        training: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
        description: str = "",
    ) -> ModelCard:
        """Register the finished folder ``from_folder`` as ``name``: write its card, move it in.

        ``from_folder`` must be on the same filesystem as the registry (e.g. under
        ``<workspace>/runs``); it is renamed, not copied, so the version appears whole or not at all.

        Raises:
            RegistryError: a bad or taken name, an unknown parent, pickle files, or a folder on
                another filesystem.
        """
        if not _NAME_RE.match(name):
            raise RegistryError(f"{name!r} is not a valid version name (letters, digits, . _ -)")
        src = Path(from_folder)
        if not src.is_dir():
            raise RegistryError(f"{src} is not a folder")
        if parent is not None:
            self.path(parent)
        pickles = _pickles(src)
        if pickles:
            raise RegistryError(
                f"refusing pickle files in {src}: {', '.join(pickles)} (use safetensors)"
            )
        dest = self.root / name
        if dest.exists():
            raise RegistryError(f"model version {name!r} already exists in {self.root}")
        card = ModelCard(
            name=name,
            backend=backend,
            base_models=dict(base_models),
            parent=parent,
            training=dict(training or {}),
            metrics=dict(metrics or {}),
            settings=dict(settings or {}),
            description=description,
            created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            files=hash_tree(src),
        )
        (src / CARD_FILE).write_text(card.to_json(), encoding="utf-8")
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(src, dest)
        except OSError as exc:
            (src / CARD_FILE).unlink(missing_ok=True)
            raise RegistryError(
                f"cannot move {src} to {dest}: {exc} (build versions on the registry's filesystem)"
            ) from exc
        return card

    def set_metrics(self, version: str, metrics: dict[str, Any]) -> ModelCard:
        """Replace the metrics on ``version``'s card (atomically; the card is not hashed)."""
        card = self.card(version)
        new = ModelCard(**{**asdict(card), "metrics": dict(metrics)})
        # 0o666 less the umask, as the card written at registration.
        atomic_write(self.path(version) / CARD_FILE, new.to_json(), permissions=0o666)
        return new

    def base_source(self, version: str, key: str, ref: str) -> str:
        """What the back end loads for the card's base model ``key`` = ``ref``, checked: a folder
        inside the version, a hub id in the local cache, or a folder inside that cache; its
        weights safetensors.

        Raises:
            RegistryError: a path outside the version and the cache, or pickle-only weights.
            core.models.hub.ModelNotAvailable: a hub id that is not in the local cache.
        """
        from core.models.hub import HF_HUB_PREFIX, resolve_model
        from core.runtime.paths import OutsideRoot, resolve_inside

        folder = self.path(version)
        what = f"version {version!r}: base model {key!r}"
        slot = base_model_slots().get(key)
        config = slot.marker if slot is not None else "config.json"
        raw = ref.removeprefix(HF_HUB_PREFIX)
        if not Path(raw).is_absolute() and not raw.startswith("~"):
            try:
                local = resolve_inside(folder, raw)
            except OutsideRoot:
                raise RegistryError(
                    f"{what} is {ref!r}, which leads outside the version folder; refused (a card may "
                    "name a folder inside its version, or a model in the Hugging Face cache)"
                ) from None
            if local.is_dir():
                return str(local)  # inside the version: hashed and pickle-checked by verify
            if not _HUB_ID.match(raw) or ".." in raw.split("/"):
                raise RegistryError(f"{what}: there is no folder {raw!r} in the version")
            snapshot = Path(resolve_model(raw, (config,)))
            check_weights(snapshot, what)
            return ref
        cache = _hf_cache()
        real = Path(os.path.realpath(os.path.expanduser(raw)))
        if real != cache and cache not in real.parents:
            raise RegistryError(
                f"{what} is the folder {ref!r}, outside the version and the Hugging Face cache "
                f"({cache}); refused. Register it again with `medreview models add` (which copies "
                "a folder into the version)"
            )
        check_weights(real, what)
        return ref

    def load_backend(
        self, version: str, device: str = "auto", image_root: str | None = None
    ) -> Backend:
        """Verify ``version`` and build its back end on ``device``.

        Raises:
            RegistryError: see ``verify`` and ``base_source``; an unknown back end.
            core.models.hub.ModelNotAvailable: a base model is not on this machine.
        """
        card = self.verify(version)
        folder = self.path(version)

        def base(key: str) -> str:
            ref = card.base_models.get(key)
            if not ref:
                raise RegistryError(f"version {version!r}: card names no {key!r} base model")
            return self.base_source(version, key, ref)

        try:
            spec = backend_spec(card.backend)
        except ValueError:
            raise RegistryError(
                f"version {version!r}: unknown back end {card.backend!r} "
                f"(this program knows {', '.join(BACKENDS)})"
            ) from None
        config_class = spec.load_config_class()
        if config_class is None:
            return spec.load_class()()  # type: ignore[no-any-return]
        names = {f.name for f in dataclass_fields(config_class)}
        filled = {s.field for s in spec.base_models}
        # The card's settings that the config takes; paths and the device come from here.
        kwargs: dict[str, Any] = {
            k: v for k, v in card.settings.items() if k in names and k not in filled | _RUNTIME
        }
        for slot in spec.base_models:
            if slot.used_if is None or card.settings.get(slot.used_if, True):
                kwargs[slot.field] = base(slot.key)
        adapter = str(folder / "adapter") if (folder / "adapter").is_dir() else None
        runtime = {"adapter": adapter, "device": device, "image_root": image_root}
        kwargs.update({k: v for k, v in runtime.items() if k in names})
        return spec.load_class()(config_class(**kwargs))  # type: ignore[no-any-return]
