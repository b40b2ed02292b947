"""``generate_demo``: the reproducible demo benchmark, phantom images plus a JSONL manifest.

Same seed, same bytes: the plan, the case ids, every pixel and every PNG are drawn from the seed
alone (each image from its own child generator, so images do not depend on each other), and PNGs
are written by Pillow with fixed settings and no metadata.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from core.cases.records import SPLITS, Case
from core.clinical.knowledge import KnowledgeTable, default_knowledge
from core.demo.phantoms import render
from core.demo.scenarios import SPLIT_FRACTIONS, Scenario, plan_scenarios
from core.runtime.files import atomic_write
from core.runtime.progress import Progress

MANIFEST_NAME = "demo_manifest.jsonl"
MIN_CASES = 1


@dataclass(frozen=True)
class DemoConfig:
    """How the demo benchmark is made."""

    seed: int = field(
        default=0, metadata={"help": "random seed; the same seed gives the same bytes"}
    )
    n_cases: int = field(
        default=600, metadata={"help": "number of cases, spread evenly over the four modalities"}
    )
    image_size: int = field(
        default=224, metadata={"help": "side of the square phantom images, in pixels"}
    )
    mix: tuple[float, float, float] = field(
        default=(0.5, 0.25, 0.25),
        metadata={
            "help": "fractions of consistent, treatment_mismatch and unsupported_by_image cases"
        },
    )
    splits: tuple[float, float, float, float] = field(
        default=SPLIT_FRACTIONS,
        metadata={"help": "train/review/val/test fractions within every stratum"},
    )

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.n_cases, int) or self.n_cases < MIN_CASES:
            raise ValueError(f"n_cases must be an integer >= {MIN_CASES}, got {self.n_cases!r}")
        if not 32 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be within 32..1024, got {self.image_size}")
        for name, n in (("mix", 3), ("splits", len(SPLITS))):
            values = getattr(self, name)
            if len(values) != n or any(v < 0 for v in values) or sum(values) <= 0:
                raise ValueError(f"{name} must be {n} non-negative fractions, got {values!r}")


def generate_demo(
    out_dir: Path,
    *,
    seed: int = 0,
    n_cases: int = 600,
    progress: Progress | None = None,
    config: DemoConfig | None = None,
    knowledge: KnowledgeTable | None = None,
) -> list[Case]:
    """Write the demo cases' images and manifest into ``out_dir`` and return the cases.

    Images go to ``out_dir/images/<sha256>.png`` (``Case.image`` is that path relative to
    ``out_dir``), the manifest to ``out_dir/demo_manifest.jsonl``, one ``Case.to_dict()`` a line.
    ``Case.meta`` holds the synthetic ground truth of the image: ``shown_finding``,
    ``shown_visual``, ``stated_visual``, ``scenario`` and ``lesion`` (where it was drawn).

    Args:
        config: overrides ``seed`` and ``n_cases`` when given.

    Raises:
        ValueError: a bad configuration.
        core.runtime.progress.Canceled: ``progress`` was canceled (images already written stay; the
            manifest is only written at the end).
    """
    cfg = config or DemoConfig(seed=seed, n_cases=n_cases)
    kt = knowledge or default_knowledge()
    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    plan_rng = np.random.default_rng([cfg.seed, 0])
    plan = plan_scenarios(kt, cfg.n_cases, cfg.mix, cfg.splits, plan_rng)
    ids = [f"case-{plan_rng.bytes(8).hex()}" for _ in plan]
    cases: list[Case] = []
    total = len(plan)
    for i, (sc, case_id) in enumerate(zip(plan, ids, strict=True)):
        if progress is not None:
            progress.check()
            if i % 25 == 0:
                progress.update("demo images", i, total)
        rng = np.random.default_rng([cfg.seed, 1, i])
        pixels, lesion = render(sc.modality, sc.shown.visual, rng, cfg.image_size)
        rel = _write_png(pixels, images_dir)
        cases.append(_case(sc, case_id, rel, lesion))
    _write_manifest(out_dir / MANIFEST_NAME, cases)
    if progress is not None:
        progress.update("demo images", total, total)
    return cases


def png_bytes(pixels: np.ndarray) -> bytes:
    """Deterministic PNG bytes of 8-bit L or RGB pixels (no metadata chunks)."""
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="RGB" if pixels.ndim == 3 else "L").save(
        buf, format="PNG", optimize=False, compress_level=1
    )
    return buf.getvalue()


def _write_png(pixels: np.ndarray, images_dir: Path) -> str:
    data = png_bytes(pixels)
    name = hashlib.sha256(data).hexdigest() + ".png"
    target = images_dir / name
    if not target.exists():
        # Not fsynced one by one: hundreds of images, all of them made again by the same seed.
        atomic_write(target, data, fsync=False)
    return f"images/{name}"


def _case(sc: Scenario, case_id: str, image: str, lesion: dict[str, object]) -> Case:
    meta = {
        "scenario": sc.kind,
        "shown_finding": sc.shown.name,
        "shown_visual": sc.shown.visual,
        "stated_visual": sc.stated.visual,
        "lesion": {k: round(v, 4) if isinstance(v, float) else v for k, v in lesion.items()},
    }
    return Case(
        case_id=case_id,
        modality=sc.modality,
        image=image,
        finding=sc.stated.name,
        treatment=sc.treatment,
        error_type=sc.kind,
        severity=sc.severity,
        cost_impact=float(sc.cost_impact),
        split=sc.split,
        meta=meta,
    )


def _write_manifest(path: Path, cases: list[Case]) -> None:
    lines = [json.dumps(c.to_dict(), ensure_ascii=False, allow_nan=False) for c in cases]
    atomic_write(path, ("\n".join(lines) + "\n").encode("utf-8"))
