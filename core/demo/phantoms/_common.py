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
    """A soft-edged filled ellipse in [0, 1]; ``soft`` is the edge width in grid units.

    On the standard ``grid`` only the ellipse's bounding box is computed (the rest is zero), so
    many small shapes on a large image stay cheap.
    """
    box = _bbox(y, x, cy, cx, max(ry, rx) * 1.05 + soft)
    if box is None:
        return _ellipse(y, x, cy, cx, ry, rx, angle, soft)
    out = np.zeros(y.shape, dtype=np.float32)
    (r0, r1), (c0, c1) = box
    if r0 < r1 and c0 < c1:
        out[r0:r1, c0:c1] = _ellipse(y[r0:r1, c0:c1], x[r0:r1, c0:c1], cy, cx, ry, rx, angle, soft)
    return out


def _bbox(
    y: np.ndarray, x: np.ndarray, cy: float, cx: float, reach: float
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Index ranges covering ``reach`` around (cy, cx), if ``y``/``x`` are the standard grid."""
    n = y.shape[0]
    if y.ndim != 2 or y.shape != (n, n) or x.shape != y.shape or n < 32:
        return None
    if not (y[0, 0] == -1.0 and y[-1, 0] == 1.0 and y[0, -1] == -1.0 and x[0, 0] == -1.0):
        return None
    if not (x[0, -1] == 1.0 and x[-1, 0] == -1.0):
        return None
    scale = (n - 1) / 2.0

    def span(c: float) -> tuple[int, int]:
        lo = int(np.floor((c - reach + 1.0) * scale)) - 1
        hi = int(np.ceil((c + reach + 1.0) * scale)) + 2
        return max(0, lo), min(n, hi)

    return span(cy), span(cx)


def _ellipse(
    y: np.ndarray,
    x: np.ndarray,
    cy: float,
    cx: float,
    ry: float,
    rx: float,
    angle: float,
    soft: float,
) -> np.ndarray:
    c, s = float(np.cos(angle)), float(np.sin(angle))  # Python floats keep arrays float32
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
    step = max(1, int(sigma / 0.9))
    small = size // step + 2
    n = ndimage.gaussian_filter(rng.standard_normal((small, small), dtype=np.float32), sigma / step)
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
    """A radius multiplier around 1 that wobbles with angle: irregular, lobulated margins.

    The harmonics cos(k*theta + phase) come from powers of exp(i*theta), one complex multiply
    per harmonic instead of a cosine each.
    """
    z = np.exp(1j * theta.astype(np.float32)).astype(np.complex64)
    zk = z * z
    out = np.ones(theta.shape, dtype=np.float32)
    for k in range(2, 2 + lobes):
        weight = amount / k * rng.uniform(0.3, 1.0)
        phase = np.complex64(np.exp(1j * rng.uniform(0, 2 * np.pi)))
        out += np.float32(weight) * (zk * phase).real
        zk = zk * z
    return out


def rotate(img: np.ndarray, degrees: float, keep_corners: bool = True) -> np.ndarray:
    """Rotate a float image about its centre (bilinear). With ``keep_corners`` the corners the
    rotation uncovers keep the unrotated pixels, so no seam or fill colour shows at the border;
    without, they are zero (for a caller that crops the centre)."""
    im = Image.fromarray(np.ascontiguousarray(img, dtype=np.float32), mode="F")
    out = np.asarray(im.rotate(degrees, resample=Image.Resampling.BILINEAR), dtype=np.float32)
    if not keep_corners:
        return out
    ones = Image.fromarray(np.ones_like(img, dtype=np.float32), mode="F")
    cover = np.asarray(ones.rotate(degrees, resample=Image.Resampling.BILINEAR), dtype=np.float32)
    return (out + (1.0 - cover) * img).astype(np.float32)


def upscale(img: np.ndarray, size: int) -> np.ndarray:
    """Resize a float image to ``size`` x ``size`` (bicubic; the aspect ratio may change)."""
    im = Image.fromarray(np.ascontiguousarray(img, dtype=np.float32), mode="F")
    return np.asarray(im.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)
