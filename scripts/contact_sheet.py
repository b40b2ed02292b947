"""Save one contact sheet PNG per modality: a grid of demo phantoms, one row per visual finding.

    .venv/bin/python scripts/contact_sheet.py [--out build/contact_sheets] [--seed 0] [--per-row 6]

For looking at the phantoms with one's own eyes: every finding should be visible, and each
modality should look like itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from core.demo.phantoms import VISUALS, render

CAPTION_H = 16


def sheet(modality: str, seed: int, per_row: int, size: int) -> Image.Image:
    """A grid: one row per visual of ``modality``, ``per_row`` random phantoms each."""
    visuals = VISUALS[modality]
    out = Image.new("RGB", (per_row * size, len(visuals) * (size + CAPTION_H)), "white")
    draw = ImageDraw.Draw(out)
    for r, visual in enumerate(visuals):
        for c in range(per_row):
            rng = np.random.default_rng([seed, r, c])
            pixels, lesion = render(modality, visual, rng, size)
            tile = Image.fromarray(pixels).convert("RGB")
            top = r * (size + CAPTION_H)
            out.paste(tile, (c * size, top + CAPTION_H))
            where = f" r={lesion['r']:.2f}" if "r" in lesion else ""
            draw.text((c * size + 3, top + 2), f"{modality}: {visual}{where}", fill="black")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("build/contact_sheets"), help="output folder"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-row", type=int, default=6, help="phantoms per visual")
    parser.add_argument("--size", type=int, default=224, help="phantom side in pixels")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for modality in VISUALS:
        path = args.out / f"{modality}.png"
        sheet(modality, args.seed, args.per_row, args.size).save(path)
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
