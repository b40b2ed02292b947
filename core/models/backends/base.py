"""The interface every back end implements, and the batching loop they share.

A back end turns cases into verdicts. Subclasses implement ``_predict_batch``; ``predict`` does the
batching, the per-case latency, the progress reports and the cancel checks, so every back end
behaves the same for the GUI, the command line and the evaluation.

Back ends that hold a trainable model (``clip-llm``, ``vlm``) also implement ``TrainablePolicy``,
the seam the trainers in ``core/training`` use: they never reach into a back end's internals.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from core.cases.records import Case
from core.clinical.verdicts import Verdict
from core.runtime.progress import Progress


class Backend(ABC):
    """Base class: ``predict`` over many cases, in batches, with progress and cancel."""

    #: registry name, e.g. ``"clip-llm"``
    name: str = ""

    @property
    def device(self) -> str:
        """Where the model runs (``cuda``, ``mps``, ``cpu``); shown to the user."""
        return "cpu"

    @property
    def dtype(self) -> str:
        """The compute dtype as text (``bfloat16``, ``float32``); shown to the user."""
        return "n/a"

    @abstractmethod
    def _predict_batch(self, cases: Sequence[Case]) -> list[Verdict]:
        """Verdicts for one batch, in order. ``latency_ms`` is filled in by ``predict``."""

    def predict(
        self,
        cases: Sequence[Case],
        *,
        batch_size: int = 8,
        progress: Progress | None = None,
        stage: str = "predict",
    ) -> list[Verdict]:
        """Verdicts for ``cases``, in order.

        Raises:
            core.runtime.progress.Canceled: ``progress`` was canceled; the verdicts so far are discarded.
        """
        out: list[Verdict] = []
        total = len(cases)
        if progress is not None:
            progress.update(stage, 0, total)
        for start in range(0, total, max(1, batch_size)):
            if progress is not None:
                progress.check()
            batch = cases[start : start + batch_size]
            t0 = time.perf_counter()
            verdicts = self._predict_batch(batch)
            per_case = (time.perf_counter() - t0) * 1000.0 / max(1, len(batch))
            if len(verdicts) != len(batch):
                raise RuntimeError(f"{self.name}: {len(verdicts)} verdicts for {len(batch)} cases")
            for v in verdicts:
                out.append(
                    Verdict(v.label, v.reason, v.confidence, v.text, per_case)
                    if v.latency_ms is None
                    else v
                )
            if progress is not None:
                progress.update(stage, len(out), total)
        return out


@runtime_checkable
class TrainablePolicy(Protocol):
    """What trainers need from a model back end (clip-llm and vlm implement it).

    - ``model``: the transformers model (a ``peft.PeftModel`` once an adapter is attached).
    - ``tokenizer``: the tokenizer (for vlm, the processor's tokenizer).
    - ``encode(cases, completions=None)``: the batch of model inputs for the prompts of ``cases``
      (chat template applied, images preprocessed), left-padded for generation; with
      ``completions``, the prompts followed by those texts and a ``labels`` tensor that masks the
      prompt with -100 (for SFT, reward and PPO scoring).
    - ``generate(cases, **gen_kwargs)``: the raw completions (token ids after the prompt) and
      their texts.
    - ``save_adapter(folder)`` / ``load_adapter(folder)``: LoRA adapter as safetensors.
    """

    model: Any
    tokenizer: Any

    def encode(
        self, cases: Sequence[Case], completions: Sequence[str] | None = None
    ) -> dict[str, Any]: ...

    def generate(self, cases: Sequence[Case], **gen_kwargs: Any) -> tuple[Any, list[str]]: ...

    def save_adapter(self, folder: str) -> None: ...

    def load_adapter(self, folder: str) -> None: ...
