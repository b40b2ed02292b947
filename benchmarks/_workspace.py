"""What the experiments on a ``medreview benchmark`` workspace share: its cases, read once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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
