"""The demo benchmark: synthetic cases in all four modalities whose visible finding is known.

``generate_demo(out_dir, seed=..., n_cases=...)`` writes phantom images and a JSONL manifest and
returns the cases (see ``core.demo.generator``, ``core.demo.scenarios`` and docs/cases.md).
"""

from __future__ import annotations

from core.demo.generator import MANIFEST_NAME, DemoConfig, generate_demo
from core.demo.scenarios import KINDS, Scenario, plan_scenarios

__all__ = ["KINDS", "MANIFEST_NAME", "DemoConfig", "Scenario", "generate_demo", "plan_scenarios"]
