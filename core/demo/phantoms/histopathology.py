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

from core.demo.phantoms._common import blur, ellipse, grid, rotate, smooth_noise, upscale

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
    big = int(size * 1.42) + 2  # a canvas whose centre stays covered at any rotation
    # Long along x: noise a quarter as wide, blurred, then stretched (cheaper than a wide blur).
    fibres = blur(rng.standard_normal((big, big // 4), dtype=np.float32), (0.8, 1.0))
    fibres = upscale(fibres, big)
    off = (big - size) // 2
    fibres = rotate(fibres, float(np.degrees(angle)), keep_corners=False)[
        off : off + size, off : off + size
    ]
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
    rgb += 0.012 * rng.standard_normal((size, size, 1), dtype=np.float32)  # sensor noise
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
    if not nuclei:
        return np.zeros((size, size), dtype=np.float32)
    # All outlines at once: (nuclei, 20 vertices), then one polygon call each.
    ny, nx, ry, rx, a, dens = (
        np.asarray(col, dtype=np.float64)[:, None] for col in zip(*nuclei, strict=True)
    )
    t = np.linspace(0.0, 2.0 * np.pi, 20, endpoint=False)[None, :]
    wobble = np.ones((len(nuclei), 1))
    if atypical:  # pleomorphic: irregular, lumpy outlines
        p2, p3 = rng.uniform(0, 2 * np.pi, (2, len(nuclei), 1))
        wobble = 1.0 + 0.08 * np.sin(2 * t + p2) + 0.06 * np.sin(3 * t + p3)
    u, v = rx * wobble * np.cos(t), ry * wobble * np.sin(t)
    to_px = (size * scale - 1) / 2.0
    xs = ((nx + u * np.cos(a) - v * np.sin(a) + 1.0) * to_px).tolist()
    ys = ((ny + u * np.sin(a) + v * np.cos(a) + 1.0) * to_px).tolist()
    fills = dens[:, 0].tolist()
    for px_x, px_y, fill in zip(xs, ys, fills, strict=True):
        draw.polygon(list(zip(px_x, px_y, strict=True)), fill=fill)
    if atypical:
        # One or two dark nucleoli inside each nucleus.
        count = rng.integers(1, 3, len(nuclei))
        idx = np.repeat(np.arange(len(nuclei)), count)
        oy = (ny[idx, 0] + rng.normal(0, 1, len(idx)) * ry[idx, 0] / 4 + 1.0) * to_px
        ox = (nx[idx, 0] + rng.normal(0, 1, len(idx)) * rx[idx, 0] / 4 + 1.0) * to_px
        for cy, cx, fill in zip(
            oy.tolist(), ox.tolist(), (dens[idx, 0] + 0.8).tolist(), strict=True
        ):
            draw.ellipse((cx - 2.4, cy - 2.4, cx + 2.4, cy + 2.4), fill=fill)
    small = canvas.resize((size, size), Image.Resampling.BOX)
    density = np.asarray(small, dtype=np.float32)
    if atypical:
        density = density * (0.8 + 0.2 * rng.random((size, size), dtype=np.float32))
    return density
