"""An experiment, not a product path: does a version know every treatment the knowledge table
rejects, for every finding, in its verdict word?

On a workspace ``medreview benchmark --dir DIR`` leaves (``DIR/seed-N``, never modified): every
consistent case of a split (an image that shows its stated finding, with an accepted treatment)
is asked again with each treatment of the modality that the table does not accept for that
finding. The right verdict is always ERROR, and the image does not matter. Per (modality,
finding, treatment), the number of images answered ERROR is printed where it is not all of them.
This is how the demo LM's pairs taught once or never showed up (docs/models.md).

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.mismatch_pairs --workspace DIR/seed-0 \
        [--version demo-v2] [--splits train,val]

Under a minute a version on this 2-core CPU.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workspace", required=True, help="a seed-N folder of `medreview benchmark`")
    p.add_argument("--version", default="demo-v2", help="the version to ask (default demo-v2)")
    p.add_argument("--splits", default="train,val", help="whose images to use (comma-separated)")
    args = p.parse_args(argv)
    root = Path(args.workspace)
    from benchmarks._workspace import manifest_cases
    from core.clinical.knowledge import default_knowledge
    from core.demo.train_models import _shown_finding
    from core.models.registry import Registry, RegistryError

    kb = default_knowledge()
    try:
        every = manifest_cases(root)
    except FileNotFoundError as e:
        print(f"mismatch_pairs: {e}", file=sys.stderr)
        return 2
    try:
        backend = Registry(root / "models").load_backend(
            args.version, device="cpu", image_root=str(root)
        )
    except RegistryError as e:
        print(f"mismatch_pairs: {e}", file=sys.stderr)
        return 2
    for split in args.splits.split(","):
        probes = []
        for c in every:
            shown = _shown_finding(c, kb)
            if c.split != split or c.error_type != "none" or shown is None:
                continue
            findings = kb.findings_for(c.modality)
            pool = sorted({t for f in findings for t in f.acceptable} - set(shown.acceptable))
            probes += [replace(c, finding=shown.name, treatment=t) for t in pool]
        verdicts = backend.predict(probes, batch_size=32)
        counts: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        for v, c in zip(verdicts, probes, strict=True):
            tally = counts[(c.modality, c.finding, c.treatment)]
            tally[0] += v.label.value == "ERROR"
            tally[1] += 1
        right = sum(t[0] for t in counts.values())
        print(f"{split}: {right} of {len(probes)} mismatch probes answered ERROR")
        for (modality, finding, treatment), (ok, n) in sorted(counts.items()):
            if ok < n:
                print(f"  {modality}: {finding} + {treatment}: {ok} of {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
