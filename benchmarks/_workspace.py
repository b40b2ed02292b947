"""What the experiments on a ``medreview benchmark`` workspace share: its versions, its
``--dir``/``--seeds`` arguments and its cases, read once."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

#: The versions a benchmark seed leaves: the vision phase, then SFT and RL on the ratings.
VERSIONS = ("demo-v2", "bench-sft", "bench-rl")


def seed_list(text: str) -> list[int]:
    """``--seeds``' value, "0,1,2", as integers (argparse turns the error into one line)."""
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes integers, comma-separated; got {text!r}") from None


def add_workspace_args(p: argparse.ArgumentParser) -> None:
    """``--dir`` (the folder ``medreview benchmark --dir`` filled) and ``--seeds``."""
    p.add_argument("--dir", required=True, help="the folder `medreview benchmark --dir` filled")
    p.add_argument("--seeds", type=seed_list, default=[0, 1, 2],
                   help="its seed-N workspaces to use (default 0,1,2)")  # fmt: skip


def manifest_cases(root: Path) -> list[Any]:
    """Every case of the workspace's demo manifest, in the manifest's order (the order
    ``train_demo_models`` was given), image paths made absolute.

    Raises:
        FileNotFoundError: ``root`` has no demo manifest.
    """
    from core.cases.records import Case
    from core.demo import MANIFEST_NAME
    from core.demo.train_models import _absolute

    path = root / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{root} has no {MANIFEST_NAME}")
    lines = path.read_text(encoding="utf-8").splitlines()
    return _absolute([Case.from_dict(json.loads(x)) for x in lines if x.strip()], str(root))
