"""Small numpy helpers the phantoms share: coordinate grids, soft shapes, smooth noise, blur."""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage


def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) coordinate arrays in [-1, 1], float32, shape (size, size)."""
    axis = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    y, x = np.meshgrid(axis, axis, indexing="ij")
    return y, x


def ellipse(
    y: np.ndarray,
    x: np.ndarray,
    cy: float,
    cx: float,
    ry: float,
    rx: float,
    angle: float = 0.0,
    soft: float = 0.02,
) -> np.ndarray:
    """A soft-edged filled ellipse in [0, 1]; ``soft`` is the edge width in grid units."""
    c, s = np.cos(angle), np.sin(angle)
    dy, dx = y - cy, x - cx
    u = (dx * c + dy * s) / rx
    v = (-dx * s + dy * c) / ry
    r = np.sqrt(u * u + v * v)
    # Edge width relative to the ellipse's own size, so small and large shapes blur alike.
    width = max(soft / max(min(rx, ry), 1e-3), 1e-3)
    return np.clip((1.0 - r) / width + 0.5, 0.0, 1.0).astype(np.float32)


def radial_distance(
    y: np.ndarray, x: np.ndarray, cy: float, cx: float, ry: float, rx: float
) -> np.ndarray:
    """Normalised elliptical radius (1 on the ellipse's edge)."""
    return np.sqrt(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2).astype(np.float32)


def smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Gaussian noise blurred by ``sigma`` pixels and rescaled to zero mean, unit std.

    Wide blurs are done on a coarse grid and upsampled bilinearly: the same look for a fraction
    of the cost (a 12-pixel Gaussian on the full grid would dominate a phantom's budget).
    """
    step = max(1, int(sigma / 1.5))
    small = size // step + 2
    n = ndimage.gaussian_filter(
        rng.standard_normal((small, small)).astype(np.float32), sigma / step
    )
    if step > 1:
        n = np.asarray(
            Image.fromarray(n, mode="F").resize(
                (size, size), Image.Resampling.BILINEAR, box=(1.0, 1.0, small - 1.0, small - 1.0)
            ),
            dtype=np.float32,
        )
    else:
        n = n[1 : size + 1, 1 : size + 1]
    std = float(n.std()) or 1.0
    return ((n - n.mean()) / std).astype(np.float32)


def blur(img: np.ndarray, sigma: float | tuple[float, ...]) -> np.ndarray:
    return ndimage.gaussian_filter(img, sigma).astype(np.float32)


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def lobulated_radius(
    rng: np.random.Generator, theta: np.ndarray, amount: float, lobes: int = 5
) -> np.ndarray:
    """A radius multiplier around 1 that wobbles with angle: irregular, lobulated margins."""
    out = np.ones_like(theta)
    for k in range(2, 2 + lobes):
        out += amount / k * rng.uniform(0.3, 1.0) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return out.astype(np.float32)
