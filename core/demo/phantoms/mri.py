"""Brain MRI phantom (axial, T1 post-contrast-like, greyscale): scalp, skull, cortex with sulci,
white matter, ventricles, midline; findings: ring-enhancing mass with oedema, a bright
haemorrhage, or none. Noise is Rician, as in magnitude MR images.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.demo.phantoms._common import (
    blur,
    ellipse,
    grid,
    lobulated_radius,
    radial_distance,
    smooth_noise,
    upscale,
)

VISUALS = ("mass", "bleed", "none")


def render(visual: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict[str, Any]]:
    """A float32 greyscale image in [0, 1] showing ``visual``, and where the lesion lies."""
    if visual not in VISUALS:
        raise ValueError(f"mri phantom: unknown visual {visual!r}; expected one of {VISUALS}")
    # The anatomy is smooth: draw it at half resolution, upsample, then add full-resolution noise.
    work = max(32, size // 2)
    px = work / size  # sigmas below are in output pixels
    y, x = grid(work)
    cy, ry, rx = rng.uniform(-0.03, 0.05), rng.uniform(0.8, 0.86), rng.uniform(0.64, 0.7)
    d = radial_distance(y, x, cy, 0.0, ry, rx)
    theta = np.arctan2(y - cy, x)
    d = d / (1.0 + 0.02 * smooth_noise(rng, work, 8.0 * px))

    img = np.zeros_like(y)
    edge = 0.02  # about a pixel of the working grid: smooth, unaliased boundaries
    img += 0.85 * _band(d, 1.06, 1.13, edge)  # scalp fat, bright on T1
    img += 0.45 * _band(d, 1.0, 1.06, edge)  # diploe between the dark cortical bone
    brain = _band(d, -1.0, 0.96, edge)
    # Cortex: a grey ribbon whose inner edge folds into gyri; white matter inside is brighter.
    k = int(rng.integers(16, 22))
    phase = 0.8 * smooth_noise(rng, work, 6.0 * px)
    folds = 0.8 + 0.06 * np.sin(k * theta + phase) + 0.03 * smooth_noise(rng, work, 3.0 * px)
    wm = np.clip((folds - d) / 0.02, 0.0, 1.0)
    img += brain * (0.4 + 0.2 * wm)
    # Sulci: thin CSF clefts running in from the surface between the gyri.
    cleft = np.clip(1.0 - np.abs(np.sin((k * theta + phase) / 2.0)) / 0.12, 0.0, 1.0)
    img -= 0.25 * cleft * np.clip((d - folds + 0.04) / 0.04, 0.0, 1.0) * brain
    img -= 0.3 * np.clip(1.0 - np.abs(x) / 0.02, 0.0, 1.0) * brain * (np.abs(y - cy) > 0.3)

    # Lateral ventricles: two frontal horns either side of the midline, and the atria behind.
    vent = np.zeros_like(y)
    vw = rng.uniform(0.045, 0.065)
    for side in (-1.0, 1.0):
        vent = np.maximum(
            vent, ellipse(y, x, cy - 0.12, side * 0.085, 0.2, vw, angle=side * 0.3, soft=0.02)
        )
        vent = np.maximum(
            vent, ellipse(y, x, cy + 0.17, side * 0.12, 0.1, vw * 0.9, angle=-side * 0.5, soft=0.02)
        )
    img = img * (1.0 - 0.7 * vent)

    lesion: dict[str, Any] = {}
    if visual != "none":
        # Somewhere in one hemisphere's white matter, away from the ventricles.
        for _ in range(50):
            ly, lx = (
                rng.uniform(-0.55, 0.55),
                rng.uniform(0.2, 0.48) * float(rng.choice([-1.0, 1.0])),
            )
            if np.hypot((ly - cy) / ry, lx / rx) < 0.7:
                break
        r = rng.uniform(0.09, 0.19)
        ang = np.arctan2(y - ly, x - lx)
        rr = np.hypot(y - ly, x - lx) / (r * lobulated_radius(rng, ang, 0.15))
        if visual == "mass":
            oedema = np.clip((1.0 - rr / rng.uniform(1.7, 2.2)) / 0.3, 0.0, 1.0) * brain
            img -= 0.15 * oedema * (0.8 + 0.2 * smooth_noise(rng, work, 3.0 * px))
            core = np.clip((0.72 - rr) / 0.08, 0.0, 1.0)
            rim = np.clip(1.0 - np.abs(rr - 0.86) / 0.14, 0.0, 1.0)
            img = img * (1.0 - np.clip(rr < 1.0, 0, 1)) + (rr < 1.0) * 0.3
            img += rng.uniform(0.5, 0.65) * rim - 0.05 * core
        else:
            inside = np.clip((1.0 - rr) / 0.12, 0.0, 1.0)
            halo = np.clip(1.0 - np.abs(rr - 1.08) / 0.1, 0.0, 1.0)
            img = img * (1.0 - inside) + inside * rng.uniform(0.82, 0.95)
            img -= 0.25 * halo  # haemosiderin rim
            img -= 0.06 * np.clip((1.0 - rr / 1.5) / 0.3, 0.0, 1.0) * (1 - inside) * brain
        lesion = {"y": float(ly), "x": float(lx), "r": float(r)}

    img = upscale(blur(np.clip(img, 0.0, 1.0), rng.uniform(0.5, 0.8) * px), size)
    y, x = grid(size)
    sigma = rng.uniform(0.015, 0.04)
    n1 = sigma * rng.standard_normal(img.shape, dtype=np.float32)
    n2 = sigma * rng.standard_normal(img.shape, dtype=np.float32)
    img = np.sqrt((img + n1) ** 2 + n2**2) * rng.uniform(0.9, 1.1)
    img = img * (1.0 + 0.08 * (y * rng.uniform(-1, 1) + x * rng.uniform(-1, 1)))  # coil shading
    return np.clip(img, 0.0, 1.0).astype(np.float32), lesion


def _band(d: np.ndarray, lo: float, hi: float, edge: float) -> np.ndarray:
    """1 where lo < d < hi, with linear ramps ``edge`` wide (anti-aliased rings)."""
    rise = np.clip((d - lo) / edge + 0.5, 0.0, 1.0)
    fall = np.clip((hi - d) / edge + 0.5, 0.0, 1.0)
    return (rise * fall).astype(np.float32)
