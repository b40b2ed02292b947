"""Chest X-ray phantom (PA view, greyscale): body, lungs with vessel markings, heart, spine, ribs,
clavicles; findings: lobar opacity, pulmonary nodule, pneumothorax, or none.

Conventions as on a real film: air is dark, bone and fluid are bright, the heart bulges to the
image's right (the patient's left).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.demo.phantoms._common import blur, ellipse, grid, lobulated_radius, smooth_noise

VISUALS = ("opacity", "nodule", "pneumothorax", "none")


def render(visual: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict[str, Any]]:
    """A float32 greyscale image in [0, 1] showing ``visual``, and where the finding lies."""
    if visual not in VISUALS:
        raise ValueError(f"xray phantom: unknown visual {visual!r}; expected one of {VISUALS}")
    y, x = grid(size)
    tilt = rng.uniform(-0.04, 0.04)
    x = x + tilt * y  # a slightly rotated patient
    body = ellipse(y, x, 0.15, 0.0, 1.05, rng.uniform(0.86, 0.95), soft=0.06)
    img = 0.06 + 0.36 * body

    lungs, lung_masks = np.zeros_like(y), []
    for side in (-1.0, 1.0):
        cx = side * rng.uniform(0.38, 0.44)
        m = ellipse(
            y,
            x,
            rng.uniform(-0.02, 0.06),
            cx,
            rng.uniform(0.6, 0.68),
            rng.uniform(0.26, 0.31),
            angle=side * 0.08,
            soft=0.05,
        )
        # The diaphragm dome cuts each lung's base.
        dome = 0.55 + 0.25 * ((x - cx) / 0.35) ** 2 + rng.uniform(-0.04, 0.04)
        m = m * np.clip((dome - y) / 0.04, 0.0, 1.0)
        lung_masks.append(m)
        lungs = np.maximum(lungs, m)
    img -= 0.26 * lungs

    markings = np.clip(smooth_noise(rng, size, 1.2), 0.0, None)
    hilum_dist = np.minimum(np.hypot(y - 0.0, x + 0.18), np.hypot(y - 0.0, x - 0.18))
    vessels = markings * np.clip(1.0 - hilum_dist / 0.8, 0.15, 1.0) * lungs

    heart = ellipse(
        y,
        x,
        rng.uniform(0.25, 0.35),
        rng.uniform(0.1, 0.18),
        rng.uniform(0.26, 0.32),
        rng.uniform(0.3, 0.36),
        angle=-0.4,
        soft=0.05,
    )
    mediastinum = ellipse(y, x, -0.1, 0.0, 0.75, 0.13, soft=0.05)
    img += 0.3 * np.maximum(heart, mediastinum) * (0.5 + 0.5 * lungs) + 0.1 * np.maximum(
        heart, mediastinum
    )

    spine = np.clip(1.0 - np.abs(x) / 0.07, 0.0, 1.0) * body * (0.85 + 0.15 * np.cos(y * 40.0))
    img += 0.12 * spine

    bone = np.zeros_like(y)
    u = np.abs(x)
    for i in range(9):
        y0 = -0.68 + i * 0.145 + rng.uniform(-0.01, 0.01)
        yc = y0 + 0.55 * np.clip(u - 0.06, 0.0, None) ** 1.6 - 0.05
        band = np.clip(1.0 - np.abs(y - yc) / 0.028, 0.0, 1.0) * (u > 0.06) * (u < 0.78)
        bone = np.maximum(bone, band)
    clav = (
        np.clip(1.0 - np.abs(y - (-0.7 - 0.12 * u + 0.25 * u * u)) / 0.035, 0.0, 1.0)
        * (u > 0.07)
        * (u < 0.62)
    )
    bone = np.maximum(bone, clav) * body
    img += 0.1 * bone

    lesion: dict[str, Any] = {}
    side = int(rng.integers(0, 2))
    lung = lung_masks[side]
    ly, lx = _point_in(lung, rng, y, x)
    if visual == "opacity":
        r = rng.uniform(0.14, 0.26)
        cloud = np.zeros_like(y)
        for _ in range(5):
            oy, ox = ly + rng.normal(0, r / 2), lx + rng.normal(0, r / 3)
            cloud = np.maximum(
                cloud,
                ellipse(
                    y, x, oy, ox, r * rng.uniform(0.5, 0.9), r * rng.uniform(0.4, 0.7), soft=r / 2
                ),
            )
        cloud = cloud * (0.85 + 0.15 * smooth_noise(rng, size, 3.0)) * lung  # respects the pleura
        img += rng.uniform(0.2, 0.32) * np.clip(cloud, 0.0, 1.0)
        vessels *= 1.0 - np.clip(cloud, 0.0, 1.0)  # consolidation hides the markings
        lesion = {"y": ly, "x": lx, "r": r}
    elif visual == "nodule":
        r = rng.uniform(0.035, 0.07)
        theta = np.arctan2(y - ly, x - lx)
        rr = np.hypot(y - ly, x - lx) / (r * lobulated_radius(rng, theta, 0.12))
        nod = np.clip((1.0 - rr) / 0.25 + 0.5, 0.0, 1.0)
        img += rng.uniform(0.2, 0.32) * nod
        lesion = {"y": ly, "x": lx, "r": r}
    elif visual == "pneumothorax":
        cy = float((lung * y).sum() / lung.sum())
        cx = float((lung * x).sum() / lung.sum())
        k = rng.uniform(0.6, 0.78)  # how far the lung has collapsed towards the hilum
        # The lung retracts towards the hilum (medial, lower); air fills the apex and the side.
        collapsed = _shrink(lung, y, x, cy + 0.2, float(np.sign(cx)) * 0.22, k)
        space = np.clip(lung - collapsed, 0.0, 1.0)
        vessels *= 1.0 - space  # no lung markings beyond the pleural line
        img -= rng.uniform(0.05, 0.09) * space
        img += 0.03 * collapsed
        edge = np.clip(1.0 - np.abs(collapsed - 0.5) / 0.5, 0.0, 1.0) * lung
        img += rng.uniform(0.1, 0.16) * blur(edge, 0.6)
        lesion = {"y": cy, "x": cx, "r": float(1 - k), "side": "right" if cx > 0 else "left"}
    img += 0.06 * vessels

    img = blur(img, rng.uniform(0.5, 0.9))
    gamma = rng.uniform(0.85, 1.15)
    img = np.clip(img, 0.0, 1.0) ** gamma * rng.uniform(0.95, 1.25)
    img += rng.normal(0.0, rng.uniform(0.008, 0.025), img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0).astype(np.float32), lesion


def _point_in(
    mask: np.ndarray, rng: np.random.Generator, y: np.ndarray, x: np.ndarray
) -> tuple[float, float]:
    """A random point well inside ``mask``."""
    ys, xs = np.nonzero(mask > 0.95)
    i = int(rng.integers(0, len(ys)))
    return float(y[ys[i], xs[i]]), float(x[ys[i], xs[i]])


def _shrink(
    lung: np.ndarray, y: np.ndarray, x: np.ndarray, cy: float, cx: float, k: float
) -> np.ndarray:
    """The lung mask scaled by ``k`` about (cy, cx): a collapsed lung."""
    size = lung.shape[0]
    sy = (cy + (y - cy) / k + 1.0) / 2.0 * (size - 1)
    sx = (cx + (x - cx) / k + 1.0) / 2.0 * (size - 1)
    iy = np.clip(np.round(sy).astype(int), 0, size - 1)
    ix = np.clip(np.round(sx).astype(int), 0, size - 1)
    inside = (sy >= 0) & (sy <= size - 1) & (sx >= 0) & (sx <= size - 1)
    return (lung[iy, ix] * inside).astype(np.float32)
