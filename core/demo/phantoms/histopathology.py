"""Histopathology phantom (H&E, RGB): pink stroma, white lumens, purple nuclei.

Colour comes from stain optical densities (Beer-Lambert with the Ruifrok-Johnston H&E vectors),
so nuclei, stroma and glass mix the way stained tissue does. Normal: small, round, evenly dark
nuclei lining regular glands. Atypical: large, pleomorphic, hyperchromatic, crowded nuclei with
nucleoli, glands lost or distorted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from core.demo.phantoms._common import blur, ellipse, grid, smooth_noise

VISUALS = ("atypical", "normal")

HAEMATOXYLIN = np.array([0.65, 0.70, 0.29], dtype=np.float32)
EOSIN = np.array([0.07, 0.99, 0.11], dtype=np.float32)


def render(visual: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict[str, Any]]:
    """An HxWx3 float32 RGB image in [0, 1] showing ``visual``, and the nuclear statistics."""
    if visual not in VISUALS:
        raise ValueError(
            f"histopathology phantom: unknown visual {visual!r}; expected one of {VISUALS}"
        )
    atypical = visual == "atypical"
    y, x = grid(size)
    # Stroma: fibres as anisotropic noise along a random direction.
    angle = rng.uniform(0, np.pi)
    fibres = blur(rng.standard_normal((size, size), dtype=np.float32), (0.8, 4.0))
    fibres = _rotate_like(fibres, angle, rng)
    eosin = rng.uniform(0.28, 0.42) + 0.12 * fibres / (np.abs(fibres).max() + 1e-6)
    eosin += 0.06 * smooth_noise(rng, size, 6.0)
    haem = 0.04 + 0.02 * smooth_noise(rng, size, 2.0)

    # Glands: white lumens lined by pink epithelium; in normal tissue an orderly ring of nuclei
    # sits at the base of the epithelium. Carcinoma loses the architecture.
    lumen = np.zeros_like(y)
    epithelium = np.zeros_like(y)
    centres: list[tuple[float, float, float, float, float]] = []
    n_glands = int(rng.integers(3, 6)) if not atypical else int(rng.integers(0, 3))
    px = 2.0 / size  # one pixel in grid units
    for _ in range(n_glands):
        for _try in range(20):  # glands do not overlap
            cy, cx = rng.uniform(-0.8, 0.8, size=2)
            ry, rx, a = rng.uniform(0.06, 0.14), rng.uniform(0.06, 0.14), rng.uniform(0, np.pi)
            if all(
                np.hypot(cy - g[0], cx - g[1]) > max(ry, rx) + max(g[2], g[3]) + 0.1
                for g in centres
            ):
                break
        else:
            continue
        lumen = np.maximum(lumen, ellipse(y, x, cy, cx, ry, rx, a, soft=0.015))
        epi = 9 * px
        epithelium = np.maximum(epithelium, ellipse(y, x, cy, cx, ry + epi, rx + epi, a, soft=0.02))
        centres.append((cy, cx, ry, rx, a))
    eosin = eosin * (1.0 + 0.35 * epithelium) * (1.0 - 0.95 * lumen)
    haem = haem * (1.0 - lumen)

    nuclei: list[
        tuple[float, float, float, float, float, float]
    ] = []  # y, x, ry, rx, angle, density
    if atypical:
        count = int(rng.integers(110, 170))
        for _ in range(count):
            r = rng.uniform(3.5, 7.5) * px
            nuclei.append(
                (
                    rng.uniform(-1, 1),
                    rng.uniform(-1, 1),
                    r,
                    r * rng.uniform(0.55, 1.0),
                    rng.uniform(0, np.pi),
                    rng.uniform(1.3, 1.9),
                )
            )
    else:
        for cy, cx, ry, rx, a in centres:
            n_ring = int(2 * np.pi * max(ry, rx) / (5.5 * px))
            for t in np.linspace(0, 2 * np.pi, n_ring, endpoint=False):
                r = rng.uniform(2.2, 2.8) * px
                oy, ox = (ry + 6.5 * px) * np.sin(t), (rx + 6.5 * px) * np.cos(t)
                ny = cy + ox * np.sin(a) + oy * np.cos(a)
                nx = cx + ox * np.cos(a) - oy * np.sin(a)
                nuclei.append((ny, nx, r, r * rng.uniform(0.75, 0.95), t, rng.uniform(0.9, 1.1)))
        for _ in range(int(rng.integers(35, 60))):
            # Stromal fibroblasts: small spindle nuclei lying along the fibres.
            r = rng.uniform(2.8, 3.6) * px
            ny, nx = rng.uniform(-1, 1), rng.uniform(-1, 1)
            nuclei.append(
                (
                    ny,
                    nx,
                    r,
                    r * rng.uniform(0.35, 0.5),
                    angle + rng.normal(0, 0.2),
                    rng.uniform(0.85, 1.05),
                )
            )

    haem = haem + _draw_nuclei(nuclei, size, atypical, rng)
    sizes = [max(n[2], n[3]) / px for n in nuclei]
    haem = blur(haem, 0.6)
    eosin = blur(np.clip(eosin, 0.0, None), 0.5)
    od = rng.uniform(0.9, 1.15) * (haem[..., None] * HAEMATOXYLIN + eosin[..., None] * EOSIN)
    rgb = np.exp(-od * np.log(10.0) * 0.55)
    rgb += 0.012 * rng.standard_normal(rgb.shape, dtype=np.float32)
    info = {"nuclei": len(nuclei), "mean_radius_px": float(np.mean(sizes)) if sizes else 0.0}
    return np.clip(rgb, 0.0, 1.0).astype(np.float32), info


def _draw_nuclei(
    nuclei: list[tuple[float, float, float, float, float, float]],
    size: int,
    atypical: bool,
    rng: np.random.Generator,
) -> np.ndarray:
    """Haematoxylin density of the nuclei: filled polygons drawn at twice the resolution and
    averaged down (anti-aliased edges); atypical nuclei get coarse chromatin and nucleoli."""
    scale = 2
    canvas = Image.new("F", (size * scale, size * scale), 0.0)
    draw = ImageDraw.Draw(canvas)
    t = np.linspace(0.0, 2.0 * np.pi, 20, endpoint=False)
    to_px = (size * scale - 1) / 2.0
    for ny, nx, ry, rx, a, dens in nuclei:
        wobble: np.ndarray | float = 1.0
        if atypical:  # pleomorphic: irregular, lumpy outlines
            wobble = (
                1.0
                + 0.08 * np.sin(2 * t + rng.uniform(0, 6.3))
                + 0.06 * np.sin(3 * t + rng.uniform(0, 6.3))
            )
        u, v = rx * wobble * np.cos(t), ry * wobble * np.sin(t)
        px_x = (nx + u * np.cos(a) - v * np.sin(a) + 1.0) * to_px
        px_y = (ny + u * np.sin(a) + v * np.cos(a) + 1.0) * to_px
        draw.polygon(list(zip(px_x.tolist(), px_y.tolist(), strict=True)), fill=float(dens))
        if atypical:
            for _ in range(int(rng.integers(1, 3))):
                oy = (ny + rng.normal(0, ry / 4) + 1.0) * to_px
                ox = (nx + rng.normal(0, rx / 4) + 1.0) * to_px
                draw.ellipse((ox - 2.4, oy - 2.4, ox + 2.4, oy + 2.4), fill=float(dens) + 0.8)
    small = canvas.resize((size, size), Image.Resampling.BOX)
    density = np.asarray(small, dtype=np.float32)
    if atypical:
        density = density * (0.8 + 0.2 * rng.random((size, size), dtype=np.float32))
    return density


def _rotate_like(field: np.ndarray, angle: float, rng: np.random.Generator) -> np.ndarray:
    """Rotate a texture by ``angle`` (nearest neighbour, wrapping): fibres run any direction."""
    size = field.shape[0]
    i, j = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    c, s = np.cos(angle), np.sin(angle)
    si = np.round(c * (i - size / 2) - s * (j - size / 2) + size / 2).astype(int) % size
    sj = np.round(s * (i - size / 2) + c * (j - size / 2) + size / 2).astype(int) % size
    return field[si, sj]
