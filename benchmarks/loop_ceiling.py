"""An experiment, not a product path: how much could a loop that trains only the language model
(SFT, reward model, PPO) still fix, on a benchmark's workspaces?

On the workspaces ``medreview benchmark --dir DIR`` leaves (``DIR/seed-N``, never modified), each
of demo-v2, bench-sft and bench-rl answers a split, and every wrong answer is put in one of two
classes by the encoder's own call on the stated finding (``seen`` / ``not seen`` at the version's
``stated_threshold``, the words its language model reads):

- ``perception``: the case turns on the image (scenario kind ``none`` or
  ``unsupported_by_image``) and the encoder's call is wrong, so the description the language
  model reads says the opposite of the truth. A language model that follows its input answers
  these wrong; only a better image encoder fixes them.
- ``language``: the encoder's call is right, or the case does not turn on the image (a treatment
  the knowledge table rejects is an error whatever the image shows), and the answer is still
  wrong. These are what a loop on the language model could fix.

Per seed and split it prints the counts, and for the test split the best McNemar p a
language-only loop could reach from bench-sft: every ``language`` error of bench-sft fixed,
nothing broken, pooled over the seeds (the benchmark's paired test). The review split is
counted too: demo-v2's wrong answers there are the cases where the simulated panel's ratings
can show it something it does not already do.

This reads ground truth (the scenario kind, the shown finding) to classify, on the workspaces a
benchmark has finished with: it chooses nothing. Run it on val while deciding anything; the test
split only for the record.

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.loop_ceiling --dir DIR [--seeds 0,1,2] \
        [--splits review,val,test] [--json OUT]

About 30 s a seed on this 2-core CPU (portable numerics, as the benchmark).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks._workspace import VERSIONS, add_workspace_args, manifest_cases

IMAGE_KINDS = ("none", "unsupported_by_image")


def classify(case: Any, said_error: bool, stated_p: float | None, threshold: float | None) -> str:
    """``right``, ``perception`` or ``language`` for one answer (see the module's docstring)."""
    if said_error == bool(case.is_error):
        return "right"
    if case.error_type in IMAGE_KINDS and stated_p is not None and threshold is not None:
        call_seen = stated_p >= threshold
        truly_shown = case.error_type == "none"
        if call_seen != truly_shown:
            return "perception"
    return "language"


def best_p(n_language_errors: int) -> float:
    """The benchmark's exact McNemar p when every one of ``n`` errors is fixed and none is
    broken (b 0, c n): the best a language-only loop could show."""
    from core.evaluation.paired import mcnemar_exact

    return mcnemar_exact(0, n_language_errors).p_value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_workspace_args(p)
    p.add_argument("--splits", default="review,val", help="splits to count (add test, once)")
    p.add_argument("--json", metavar="OUT", help="also write the counts as JSON")
    args = p.parse_args(argv)
    seeds: list[int] = args.seeds
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    from core.cases.records import SPLITS

    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        print(f"loop_ceiling: --splits takes some of {', '.join(SPLITS)}; got {args.splits!r}",
              file=sys.stderr)  # fmt: skip
        return 2

    from core.runtime.numerics import use_portable_numerics

    reason = use_portable_numerics()  # the benchmark's arithmetic, so the answers are its own
    if reason:
        print(f"loop_ceiling: native arithmetic ({reason}); answers may differ from the "
              "benchmark's", file=sys.stderr)  # fmt: skip

    from core.models.registry import Registry, RegistryError

    out: dict[str, Any] = {"seeds": seeds, "rows": []}
    for seed in seeds:
        root = Path(args.dir) / f"seed-{seed}"
        try:
            every = manifest_cases(root)
        except FileNotFoundError as e:
            print(f"loop_ceiling: {e}", file=sys.stderr)
            return 2
        registry = Registry(root / "models")
        for name in VERSIONS:
            try:
                backend: Any = registry.load_backend(name, device="cpu", image_root=str(root))
            except RegistryError as e:
                print(f"loop_ceiling: {e}", file=sys.stderr)
                continue
            threshold = backend.config.stated_threshold
            for split in splits:
                cases = [c for c in every if c.split == split and c.error_type is not None]
                verdicts = backend.predict(cases, batch_size=16)
                scores = backend.image_scores(cases)
                counts = {"right": 0, "perception": 0, "language": 0}
                wrong: list[dict[str, Any]] = []
                for case, verdict, sc in zip(cases, verdicts, scores, strict=True):
                    stated = backend.knowledge.finding(case.modality, case.finding)
                    p_stated = dict(sc).get(stated.name) if stated is not None else None
                    said = verdict.label.value == "ERROR"
                    kind = classify(case, said, p_stated, threshold)
                    counts[kind] += 1
                    if kind != "right":
                        wrong.append({"case": case.case_id, "class": kind,
                                      "scenario": case.error_type, "modality": case.modality,
                                      "p_stated": p_stated, "answer": verdict.text})  # fmt: skip
                row = {"seed": seed, "version": name, "split": split, "cases": len(cases),
                       "threshold": threshold, **counts, "wrong": wrong}  # fmt: skip
                out["rows"].append(row)
                print(f"seed {seed} {name:9} {split:6} {counts['right']}/{len(cases)} right; "
                      f"wrong: {counts['perception']} perception, {counts['language']} language",
                      flush=True)  # fmt: skip
    sft_test = [r for r in out["rows"] if r["version"] == "bench-sft" and r["split"] == "test"]
    if sft_test:
        n_lang = sum(r["language"] for r in sft_test)
        n_perc = sum(r["perception"] for r in sft_test)
        out["ceiling"] = {"sft_language_errors": n_lang, "sft_perception_errors": n_perc,
                          "best_mcnemar_p": best_p(n_lang)}  # fmt: skip
        print(f"test, pooled: bench-sft makes {n_lang} language and {n_perc} perception errors; "
              f"a loop on the language model alone that fixed every language error and broke "
              f"nothing would reach McNemar p = {best_p(n_lang):.3g} against it")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
