"""Ultrasound phantom (convex probe, B-mode, greyscale): a fan-shaped sector of speckle with
tissue layers and depth attenuation; findings: an anechoic cyst with posterior enhancement, a
hypoechoic lobulated solid mass with posterior shadowing, or none.

Shadowing and enhancement follow the beam lines (constant angle from the probe's apex), as they
do on a real scanner.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.demo.phantoms._common import (
    blur,
    ellipse,
    grid,
    lobulated_radius,
    smooth_noise,
    upscale,
)

VISUALS = ("cyst", "solid_mass", "none")

APEX_Y = -1.35  # the probe's virtual apex sits above the image
R_NEAR, R_FAR = 0.42, 2.28


def render(visual: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict[str, Any]]:
    """A float32 greyscale image in [0, 1] showing ``visual``, and where the lesion lies."""
    if visual not in VISUALS:
        raise ValueError(
            f"ultrasound phantom: unknown visual {visual!r}; expected one of {VISUALS}"
        )
    half_angle = rng.uniform(0.5, 0.62)
    # Echogenicity and gain are smooth: drawn at half resolution, then upsampled; the speckle
    # and the sector's edge are full resolution.
    work = max(32, size // 2)
    px = work / size  # sigmas below are in output pixels
    y, x = grid(work)
    r = np.hypot(y - APEX_Y, x)
    theta = np.arctan2(x, y - APEX_Y)  # 0 straight down
    depth = np.clip((r - R_NEAR) / (R_FAR - R_NEAR), 0.0, 1.0)

    # Echogenicity: a bright skin line, subcutaneous fat, a fascia, then parenchyma.
    d = depth + 0.02 * smooth_noise(rng, work, 10.0 * px)
    echo = 0.55 + 0.06 * smooth_noise(rng, work, 12.0 * px)
    echo = np.where(d < 0.03, 1.3, echo)
    echo = np.where((d >= 0.03) & (d < 0.14), 0.35, echo)
    f = rng.uniform(0.16, 0.22)
    echo = echo + 0.8 * np.clip(1.0 - np.abs(d - f) / 0.015, 0.0, 1.0)

    lesion: dict[str, Any] = {}
    gain = np.ones_like(y)
    if visual != "none":
        lr = rng.uniform(0.3, 0.68) * (R_FAR - R_NEAR) + R_NEAR
        lt = rng.uniform(-0.6, 0.6) * half_angle
        ly, lx = float(APEX_Y + lr * np.cos(lt)), float(lr * np.sin(lt))
        size_r = rng.uniform(0.1, 0.2)
        ang = np.arctan2(y - ly, x - lx)
        wob = lobulated_radius(rng, ang, 0.02 if visual == "cyst" else 0.25)
        rr = np.hypot(y - ly, (x - lx) / rng.uniform(0.9, 1.4)) / (size_r * wob)
        inside = np.clip((1.0 - rr) / 0.06, 0.0, 1.0)
        # Beam lines through the lesion, below it: enhancement (cyst) or shadow (solid).
        beam = np.clip(1.0 - np.abs(theta - lt) * lr / (size_r * 0.9), 0.0, 1.0) * (r > lr)
        if visual == "cyst":
            echo = echo * (1.0 - inside) + inside * 0.03
            echo += 0.6 * np.clip(1.0 - np.abs(rr - 1.0) / 0.06, 0.0, 1.0)  # thin bright wall
            gain += rng.uniform(0.9, 1.3) * beam  # posterior acoustic enhancement
        else:
            echo = echo * (1.0 - inside) + inside * rng.uniform(0.18, 0.28) * (
                1 + 0.3 * smooth_noise(rng, work, 2.5 * px)
            )
            echo += 0.3 * np.clip(1.0 - np.abs(rr - 1.05) / 0.1, 0.0, 1.0)  # echogenic halo
            gain *= 1.0 - rng.uniform(0.45, 0.65) * beam  # posterior shadowing
        lesion = {"y": float(ly), "x": float(lx), "r": float(size_r)}
    atten = np.exp(-depth * rng.uniform(0.6, 1.1)) * (0.8 + 0.4 * depth)  # partial TGC
    field = upscale(np.clip(echo, 0.0, None) * atten * gain, size)

    y, x = grid(size)
    r = np.hypot(y - APEX_Y, x)
    sector = (np.abs(np.arctan2(x, y - APEX_Y)) < half_angle) & (r > R_NEAR) & (r < R_FAR)
    # Speckle: the envelope of blurred complex noise, elongated across the beam.
    re = blur(rng.standard_normal((size, size), dtype=np.float32), (0.8, 1.6))
    im = blur(rng.standard_normal((size, size), dtype=np.float32), (0.8, 1.6))
    speckle = np.hypot(re, im)
    speckle /= float(speckle.mean()) or 1.0
    env = np.clip(field, 0.0, None) * speckle
    img = np.log1p(6.0 * env) / np.log1p(6.0 * 2.2)  # log compression
    img = img * rng.uniform(0.85, 1.1)
    img = np.where(sector, img, 0.0)
    # Depth marks along the sector's right edge, as scanners draw them.
    for k in range(1, 5):
        rk = R_NEAR + k * (R_FAR - R_NEAR) / 5
        my = float(APEX_Y + rk * np.cos(half_angle + 0.06))
        mx = float(rk * np.sin(half_angle + 0.06))
        mark = ellipse(y, x, my, mx, 0.012, 0.012, soft=0.006)
        img = img * (1.0 - mark) + 0.8 * mark
    return np.clip(img, 0.0, 1.0).astype(np.float32), lesion
