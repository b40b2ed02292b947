"""Zero-shot image scoring with an open_clip model against the knowledge table's findings.

For a case of modality M, the image embedding is compared (cosine similarity times CLIP's logit
scale, then softmax) with the text embeddings of M's findings' ``clip_text``. The top scores
become the short description the clip-llm back end puts in its prompt:
``image suggests: Pneumothorax (0.71), No acute cardiopulmonary findings (0.20)``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.clinical.knowledge import KnowledgeTable, default_knowledge
from core.models.hub import HF_HUB_PREFIX, ModelNotAvailable, download_hint, resolve_model
from core.runtime.devices import DeviceChoice

DEFAULT_CLIP = "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"


def open_clip_name(source: str) -> str:
    """The name open_clip loads for ``source`` (a folder or a hub id), checked to be offline.

    A hub id must be in the local cache with its ``open_clip_config.json``, and so must the
    Hugging Face text model and tokenizer that config names (BiomedCLIP's PubMedBERT).

    Raises:
        ModelNotAvailable: the model, or a repo its config needs, is not on this machine.
    """
    folder = resolve_model(source, ("open_clip_config.json",))
    if Path(source.removeprefix(HF_HUB_PREFIX)).expanduser().is_dir():
        return f"local-dir:{folder}"
    cfg = json.loads((Path(folder) / "open_clip_config.json").read_text(encoding="utf-8"))
    text_cfg = cfg.get("model_cfg", {}).get("text_cfg", {})
    for key, needed in (
        ("hf_model_name", "config.json"),
        ("hf_tokenizer_name", "tokenizer_config.json"),
    ):
        repo = text_cfg.get(key)
        if repo:
            try:
                resolve_model(repo, (needed,))
            except ModelNotAvailable as exc:
                raise ModelNotAvailable(
                    source, f"Its text tower needs {repo!r} too. " + download_hint(repo)
                ) from exc
    return HF_HUB_PREFIX + source.removeprefix(HF_HUB_PREFIX)


@contextmanager
def quiet_open_clip() -> Iterator[None]:
    """Silence open_clip while it builds a model: it logs routine facts ("Loaded ... model
    config", "no pretrained weights" for a model we build from scratch) at WARNING on the root
    logger. Missing weights are caught before this by ``core.models.hub``, in words."""
    root = logging.getLogger()
    was = root.disabled
    root.disabled = True
    try:
        yield
    finally:
        root.disabled = was


#: open_clip's ``local-dir:`` layout: the model and preprocess config, and the weights.
OPEN_CLIP_CONFIG = "open_clip_config.json"
OPEN_CLIP_WEIGHTS = "open_clip_model.safetensors"


def save_open_clip_weights(model: Any, folder: str | Path) -> None:
    """Write an open_clip model's weights into ``folder`` as safetensors (contiguous copies, no
    shared storage), in the ``local-dir:`` layout's file name."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(Path(folder) / OPEN_CLIP_WEIGHTS))


class ClipScorer:
    """An open_clip model, its preprocessing and tokenizer, and cached finding embeddings."""

    def __init__(
        self,
        source: str = DEFAULT_CLIP,
        choice: DeviceChoice | None = None,
        knowledge: KnowledgeTable | None = None,
    ) -> None:
        """Load the model from a folder or the cache.

        Raises:
            ModelNotAvailable: see ``open_clip_name``.
        """
        import open_clip

        self.source = source
        self.choice = choice or DeviceChoice("cpu", "float32")
        self.knowledge = knowledge or default_knowledge()
        name = open_clip_name(source)
        with quiet_open_clip():
            model, _, preprocess = open_clip.create_model_and_transforms(name)
            self.tokenizer = open_clip.get_tokenizer(name)
        self.model = model.to(self.choice.device, dtype=self.choice.torch_dtype).eval()
        self.preprocess = preprocess
        self._text_cache: dict[str, Any] = {}

    def clear_cache(self) -> None:
        """Forget the finding embeddings (after the model's weights changed)."""
        self._text_cache.clear()

    def _text_features(self, modality: str) -> Any:
        import torch

        if modality not in self._text_cache:
            texts = [f.clip_text for f in self.knowledge.findings_for(modality)]
            with torch.inference_mode():
                tokens = self.tokenizer(texts).to(self.choice.device)
                self._text_cache[modality] = self.model.encode_text(tokens, normalize=True).float()
        return self._text_cache[modality]

    def image_features(self, images: Sequence[Any]) -> Any:
        """L2-normalised image embeddings ``[N, D]`` (float32) for PIL images."""
        import torch

        batch = torch.stack([self.preprocess(im) for im in images])
        batch = batch.to(self.choice.device, dtype=self.choice.torch_dtype)
        with torch.inference_mode():
            return self.model.encode_image(batch, normalize=True).float()

    def score(
        self, images: Sequence[Any], modalities: Sequence[str]
    ) -> list[list[tuple[str, float]]]:
        """Per image, its modality's findings with their probabilities, best first.

        Raises:
            KeyError: a modality the knowledge table does not have.
        """
        import torch

        feats = self.image_features(images)
        scale = float(self.model.logit_scale.detach().exp().clamp(max=100.0))
        out = []
        for i, modality in enumerate(modalities):
            text = self._text_features(modality)
            probs = torch.softmax(scale * feats[i] @ text.T, dim=-1).tolist()
            names = [f.name for f in self.knowledge.findings_for(modality)]
            out.append(sorted(zip(names, probs, strict=True), key=lambda x: -x[1]))
        return out


def describe_scores(
    scores: Sequence[tuple[str, float]],
    top_k: int = 2,
    stated: str | None = None,
    threshold: float | None = None,
) -> str:
    """``image suggests: A (0.71), B (0.20)`` from the best ``top_k`` scores.

    With the ``stated`` finding's name and a ``threshold`` (``choose_stated_threshold``), the
    encoder's call on the stated finding follows: ``; stated finding: seen (0.23)`` when its
    probability reaches the threshold, ``not seen`` below it. The language model cannot tell
    where a probability stops meaning "shown" (it never sees the val split); the threshold,
    chosen on val, carries that calibration into the prompt.
    """
    best = ", ".join(f"{name} ({p:.2f})" for name, p in list(scores)[:top_k])
    text = f"image suggests: {best}"
    if stated is not None and threshold is not None:
        p = stated_probability(scores, stated)
        text += f"; stated finding: {'seen' if p >= threshold else 'not seen'} ({p:.2f})"
    return text


def stated_probability(scores: Sequence[tuple[str, float]], stated: str) -> float:
    """The probability the scores give the finding named ``stated`` (0 when it is not scored)."""
    return dict(scores).get(stated, 0.0)


def choose_stated_threshold(
    probabilities: Sequence[float], treatment_rejected: Sequence[bool], is_error: Sequence[bool]
) -> tuple[float, float]:
    """The one-threshold rule's threshold, chosen on labelled (val) cases: a case is called an
    error when the knowledge table rejects its treatment or the stated finding's probability is
    under t. Returns ``(t, accuracy)`` for the best t of 0.01..0.99 (the lowest on a tie).

    Raises:
        ValueError: no cases, or sequences of different lengths.
    """
    n = len(probabilities)
    if n == 0 or len(treatment_rejected) != n or len(is_error) != n:
        raise ValueError("choose_stated_threshold needs the same positive number of each")

    def accuracy(t: float) -> float:
        said = [r or p < t for p, r in zip(probabilities, treatment_rejected, strict=True)]
        return sum(s == e for s, e in zip(said, is_error, strict=True)) / n

    best = max((accuracy(k / 100), -k) for k in range(1, 100))
    return -best[1] / 100, best[0]
