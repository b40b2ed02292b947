"""The demo benchmark: synthetic cases in all four modalities whose visible finding is known.

``generate_demo(out_dir, seed=..., n_cases=...)`` writes phantom images and a JSONL manifest and
returns the cases (see ``core.demo.generator``, ``core.demo.scenarios`` and docs/cases.md).
``clip``, ``lm`` and ``tokenizer`` build tiny models of the same classes as the real ones
(open_clip, a causal LM, Gemma 3), locally and with no download; ``train_models`` fits them on the
demo's train split so their verdicts mean something.

The top layer of ``core``: nothing in the engine imports the demo.
"""

from __future__ import annotations

from core.demo.generator import MANIFEST_NAME, DemoConfig, generate_demo
from core.demo.scenarios import KINDS, Scenario, plan_scenarios

__all__ = ["KINDS", "MANIFEST_NAME", "DemoConfig", "Scenario", "generate_demo", "plan_scenarios"]
