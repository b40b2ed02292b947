"""Hand-made phantom cases for the model back end tests (until and beside ``core.demo``).

Each visible finding of the knowledge table draws as a distinct shape, so a tiny image encoder can
learn to tell them apart; scenarios are consistent, treatment mismatch (visible in the text) and
unsupported by the image (visible only in the image).
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

from core.cases.records import Case
from core.clinical.knowledge import default_knowledge

SHAPES = {
    "opacity": ("ellipse", (60, 70, 150, 190), 220),
    "nodule": ("ellipse", (110, 110, 140, 140), 240),
    "pneumothorax": ("rectangle", (170, 20, 250, 236), 0),
    "atypical": ("grid", 24, 30),
    "normal": ("grid", 8, 60),
    "mass": ("ring", (70, 70, 180, 180), 230),
    "bleed": ("ellipse", (90, 90, 170, 170), 250),
    "cyst": ("ellipse", (80, 80, 170, 170), 0),
    "solid_mass": ("rectangle", (80, 90, 180, 170), 50),
}


def draw_phantom(visual: str, rng: random.Random, size: int = 256) -> Image.Image:
    """A grey phantom image showing ``visual`` (``none``: background only)."""
    im = Image.new("L", (size, size), 110 + rng.randint(-10, 10))
    d = ImageDraw.Draw(im)
    for _ in range(30):  # texture
        x, y = rng.randrange(size), rng.randrange(size)
        d.point((x, y), fill=rng.randint(80, 140))
    shape = SHAPES.get(visual)
    j = rng.randint(-8, 8)
    if shape is None:
        return im
    kind = shape[0]
    if kind in ("ellipse", "rectangle", "ring"):
        box = tuple(v + j for v in shape[1])
        if kind == "ellipse":
            d.ellipse(box, fill=shape[2])
        elif kind == "rectangle":
            d.rectangle(box, fill=shape[2])
        else:
            d.ellipse(box, outline=shape[2], width=12)
    else:
        r, step = shape[1] // 2, shape[1] * 2
        for x in range(10, size - 10, step):
            for y in range(10, size - 10, step):
                d.ellipse((x, y, x + r, y + r), fill=shape[2])
    return im


def make_cases(folder: Path, n: int = 24, seed: int = 0, split: str = "test") -> list[Case]:
    """``n`` phantom cases with images under ``folder``, cycling modalities and scenarios."""
    rng = random.Random(seed)
    kb = default_knowledge()
    folder.mkdir(parents=True, exist_ok=True)
    modalities = list(kb.findings)
    cases = []
    for i in range(n):
        modality = modalities[i % len(modalities)]
        findings = kb.findings_for(modality)
        shown = rng.choice(findings)
        scenario = ("none", "treatment_mismatch", "unsupported_by_image")[
            (i // len(modalities)) % 3
        ]
        stated = shown
        if scenario == "unsupported_by_image":
            stated = rng.choice([f for f in findings if f.name != shown.name])
        if scenario == "treatment_mismatch":
            options = [t for t in kb.treatments if t not in stated.acceptable]
        else:
            options = list(stated.acceptable)
        treatment = rng.choice(options)
        path = folder / f"p{seed}_{i}.png"
        draw_phantom(shown.visual, rng).save(path)
        severity = None if scenario == "none" else kb.severity_of(treatment)
        cases.append(
            Case(
                case_id=f"case-{seed}-{i}",
                modality=modality,
                image=str(path),
                finding=stated.name,
                treatment=treatment,
                error_type=scenario,
                severity=severity,
                split=split,
                meta={"shown": shown.name},
            )
        )
    return cases
