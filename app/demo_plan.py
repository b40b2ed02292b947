"""The demo workspace's version names and the stages its verbs report, with no Qt and no ML.

``medreview demo create|models`` (app/cli/demo.py) and the window (its first-run progress and
the background training of the full demo models) read these, so the window never imports the
verb's module and, through it, the ML stack (an import-linter contract checks it).
"""

from __future__ import annotations

from app.workspace import Workspace

QUICK_VERSION = "demo-quick"
FULL_VERSIONS = ("demo-v1", "demo-v2")
PENDING_NAME = "demo_models_pending.json"
QUICK_LM_STEPS = 150  # about 15 s on a 2-core CPU; enough to tell a mismatched treatment

# Each verb's stages in the order it reports them, the words the app's log uses for them, and
# their share of the verb's time (measured with 600 cases on a 2-core CPU, benchmarks/
# bench_first_run.py). The app turns them into one overall progress with a time left.
QUICK_PLAN: tuple[tuple[str, str, float], ...] = (
    ("demo images", "Drawing the synthetic case images", 9.0),
    ("predict: heuristic", "The knowledge-table heuristic reads every case", 8.0),
    (f"demo: {QUICK_VERSION} language model", "Training the quick text model", 12.0),
    (f"predict: {QUICK_VERSION}", "The quick model reads every case", 3.0),
)
MODELS_PLAN: tuple[tuple[str, str, float], ...] = (
    # 1600 CLIP steps (DemoTrainConfig.clip_steps), twice the 800 this share was measured with
    ("demo: image encoder", "Training the demo image encoder (CLIP)", 360.0),
    ("demo: demo-v1 language model", "Training demo-v1 (text only)", 95.0),
    ("demo: demo-v2 language model", "Training demo-v2 (image and text)", 100.0),
    # demo-v2's LM is trained twice (DemoTrainConfig.lm_restarts) and the better run on val kept
    ("demo: demo-v2 language model (run 2)", "Training demo-v2 again, from other weights", 100.0),
    ("predict: demo-v1", "demo-v1 reads every case", 10.0),
    ("predict: demo-v2", "demo-v2 reads every case", 25.0),
)
FULL_PLAN = QUICK_PLAN[:2] + MODELS_PLAN


def pending_models(ws: Workspace) -> bool:
    """True when ``ws`` was made by ``demo create --quick`` and the full demo models are not
    ready yet (the app starts ``demo models`` in the background then)."""
    return (ws.root / PENDING_NAME).is_file()
