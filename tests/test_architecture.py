"""The one rule of direction (docs/architecture.md), checked by import-linter on every test run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    exe = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
    names = {c["name"] for c in contracts}
    # The layers inside core and the no-cycles rule are among them (issue 13), not only the big four.
    assert {c["type"] for c in contracts} >= {
        "forbidden",
        "independence",
        "layers",
        "acyclic_siblings",
    }
    assert f"Contracts: {len(contracts)} kept, 0 broken" in proc.stdout, proc.stdout
    assert all(f"{name} KEPT" in " ".join(proc.stdout.split()) for name in names), proc.stdout


def test_cli_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; from app.cli.main import build_parser; from app.cli.common import apply_numerics;"
        "apply_numerics(build_parser().parse_args(['demo', 'models', '--workspace', '/nonexistent']));"
        "heavy = [m for m in ('torch','transformers','trl','open_clip','peft','PySide6','numpy') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"imported at start: {out.stdout}"
