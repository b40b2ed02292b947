"""Chest X-ray phantom (PA view, greyscale): torso, lungs with branching vessel markings, heart,
mediastinum, faint spine, curved ribs and clavicles; findings: lobar opacity, pulmonary nodule,
pneumothorax, or none.

Conventions as on a real film: air is dark, bone and fluid are bright, the heart bulges to the
image's right (the patient's left), and the abdomen below the diaphragm is soft-tissue bright.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.demo.phantoms._common import (
    blur,
    ellipse,
    grid,
    lobulated_radius,
    rotate,
    smooth_noise,
    upscale,
)

VISUALS = ("opacity", "nodule", "pneumothorax", "none")


def render(visual: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict[str, Any]]:
    """A float32 greyscale image in [0, 1] showing ``visual``, and where the finding lies."""
    if visual not in VISUALS:
        raise ValueError(f"xray phantom: unknown visual {visual!r}; expected one of {VISUALS}")
    # The anatomy is smooth: draw it at half resolution, upsample, then add full-resolution noise.
    work = max(32, size // 2)
    px = work / size  # sigmas below are in output pixels
    y, x = grid(work)
    rx_body = rng.uniform(0.84, 0.93)
    body = ellipse(y, x, 0.25, 0.0, 1.15, rx_body, soft=0.08)
    # Thicker in the middle, so brighter there.
    img = 0.05 + body * (0.3 + 0.16 * np.clip(1.0 - (x / rx_body) ** 2, 0.0, 1.0))

    lungs = []
    for side in (-1.0, 1.0):
        cx = side * rng.uniform(0.36, 0.42)
        m = ellipse(
            y,
            x,
            rng.uniform(-0.02, 0.05),
            cx,
            rng.uniform(0.6, 0.67),
            rng.uniform(0.25, 0.3),
            angle=side * 0.1,
            soft=0.04,
        )
        dome = (
            0.5
            + 0.35 * ((x - cx) / 0.3) ** 2
            + rng.uniform(-0.04, 0.04)
            + (0.05 if side > 0 else 0.0)
        )
        lungs.append(m * np.clip((dome - y) / 0.03, 0.0, 1.0))
    lung = np.maximum(lungs[0], lungs[1])

    heart = ellipse(
        y,
        x,
        rng.uniform(0.27, 0.33),
        rng.uniform(0.1, 0.16),
        rng.uniform(0.24, 0.29),
        rng.uniform(0.3, 0.35),
        angle=-0.35,
        soft=0.1,
    )
    medi = ellipse(y, x, -0.15, 0.0, 0.7, rng.uniform(0.11, 0.14), soft=0.08)
    dense = np.maximum(heart, medi)
    visible = lung * (1.0 - 0.85 * dense)  # the heart hides the lung behind it
    img = img - 0.3 * visible + 0.06 * dense

    # Vessel markings: a branching network (zero crossings of smooth noise), fading outwards.
    net = np.clip(1.0 - np.abs(smooth_noise(rng, work, 1.8 * px)) / 0.3, 0.0, 1.0)
    net = net * (0.6 + 0.4 * np.clip(smooth_noise(rng, work, 4.0 * px), 0.0, 1.0))
    hilum = np.minimum(np.hypot(y - 0.02, x + 0.16), np.hypot(y - 0.02, x - 0.16))
    markings = net * np.clip(1.0 - hilum / 0.8, 0.15, 1.0) * visible

    u = np.abs(x)
    thorax = np.clip((0.55 - y) / 0.1, 0.0, 1.0) * body
    bone = np.clip(1.0 - u / 0.06, 0.0, 1.0) * (0.6 + 0.4 * (np.cos(y * 38.0) > -0.3)) * body * 0.4
    ribs = np.zeros_like(y)
    for i in range(9):
        y0 = -0.66 + i * (0.125 + 0.006 * i) + rng.uniform(-0.01, 0.01)
        yc = y0 - 0.6 * u + 1.0 * u**2  # posterior ribs rise from the spine, then fall laterally
        band = np.clip(1.0 - np.abs(y - yc) / 0.028, 0.0, 1.0) * np.clip(
            (u - 0.07) / 0.03, 0.0, 1.0
        )
        ribs = np.maximum(ribs, band * (u < rx_body * 0.95))
    clav = np.clip(1.0 - np.abs(y - (-0.74 - 0.15 * u + 0.3 * u * u)) / 0.035, 0.0, 1.0)
    ribs = np.maximum(ribs, clav * (u > 0.06) * (u < 0.6))
    # Ribs show against the dark lung; over soft tissue they mostly vanish.
    bone = np.maximum(bone, ribs * thorax * (0.35 + 0.65 * visible))
    img += 0.09 * bone

    lesion: dict[str, Any] = {}
    side = int(rng.integers(0, 2))
    own = lungs[side] * (1.0 - dense)
    if visual == "opacity":
        ly, lx = _point_in(own * (y > -0.1), rng, y, x)
        r = rng.uniform(0.16, 0.27)
        cloud = np.zeros_like(y)
        for _ in range(6):
            oy, ox = ly + rng.normal(0, r / 2.5), lx + rng.normal(0, r / 3.5)
            cloud = np.maximum(
                cloud,
                ellipse(
                    y, x, oy, ox, r * rng.uniform(0.45, 0.8), r * rng.uniform(0.4, 0.7), soft=r / 2
                ),
            )
        cloud = (
            np.clip(cloud * (0.85 + 0.15 * smooth_noise(rng, work, 5.0 * px)), 0.0, 1.0)
            * lungs[side]
        )
        img += rng.uniform(0.24, 0.34) * cloud  # consolidation stops at the pleura
        markings *= 1.0 - cloud
        lesion = {"y": ly, "x": lx, "r": r}
    elif visual == "nodule":
        ly, lx = _point_in(own, rng, y, x)
        r = rng.uniform(0.045, 0.075)
        theta = np.arctan2(y - ly, x - lx)
        rr = np.hypot(y - ly, x - lx) / (r * lobulated_radius(rng, theta, 0.12))
        img += rng.uniform(0.2, 0.3) * np.clip((1.0 - rr) / 0.25 + 0.5, 0.0, 1.0)
        lesion = {"y": ly, "x": lx, "r": r}
    elif visual == "pneumothorax":
        this = lungs[side]
        sgn = -1.0 if side == 0 else 1.0
        k = rng.uniform(0.62, 0.8)  # the lung retracts towards the hilum (medial, lower)
        collapsed = _shrink(this, y, x, 0.25, sgn * 0.2, k)
        space = np.clip(this - collapsed, 0.0, 1.0)
        markings *= 1.0 - space  # no lung markings beyond the pleural line
        img -= rng.uniform(0.06, 0.09) * space
        markings *= 1.0 + 0.5 * collapsed  # the collapsed lung is denser
        edge = np.clip(1.0 - np.abs(collapsed - 0.5) / 0.5, 0.0, 1.0) * this * (1.0 - dense)
        img += rng.uniform(0.1, 0.15) * edge
        lesion = {"side": "left" if sgn > 0 else "right", "r": round(1.0 - k, 4)}
    img += 0.1 * markings

    img = upscale(blur(img, rng.uniform(0.5, 0.8) * px), size)
    img = rotate(img, rng.uniform(-2.5, 2.5))  # a slightly rotated patient
    img = np.clip(img, 0.0, 1.0) ** rng.uniform(0.85, 1.15) * rng.uniform(0.95, 1.2)
    img += rng.uniform(0.006, 0.02) * rng.standard_normal(img.shape, dtype=np.float32)
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
    """``lung`` scaled by ``k`` about (cy, cx): a collapsed lung (nearest-neighbour resampling)."""
    size = lung.shape[0]
    sy = (cy + (y - cy) / k + 1.0) / 2.0 * (size - 1)
    sx = (cx + (x - cx) / k + 1.0) / 2.0 * (size - 1)
    inside = (sy >= 0) & (sy <= size - 1) & (sx >= 0) & (sx <= size - 1)
    iy = np.clip(np.round(sy).astype(int), 0, size - 1)
    ix = np.clip(np.round(sx).astype(int), 0, size - 1)
    return (lung[iy, ix] * inside).astype(np.float32)
