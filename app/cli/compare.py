"""``medreview compare``: two model versions on the same held-out cases, side by side.

    medreview compare A B [--split test] [--json OUT] [--png OUT] [--n-boot 2000] [--seed 0]

Prints each version's metrics with paired-bootstrap 95% intervals and the difference B - A, the
exact McNemar test on the paired verdicts, and the cases where the verdict labels differ. Either
name may be ``heuristic`` (run now when the store has no predictions of it). The comparison is
paired, so it uses the cases both versions have a prediction for; the others are reported and left
out (exit 1). Read-only.
"""

from __future__ import annotations

import argparse

from app.cli.common import EXIT_OK, EXIT_PARTIAL, CommandError, add_common
from app.cli.evaluate import (
    add_split_and_outputs,
    load_cases,
    load_verdict_set,
    open_workspace_store,
    report_missing,
    write_json,
)


def register(sub: argparse._SubParsersAction, verb: str, help_: str) -> None:
    p = sub.add_parser(verb, help=help_, description=__doc__.split("\n\n")[0] if __doc__ else help_)
    add_common(p)
    p.add_argument(
        "a", metavar="A", help="the reference version (e.g. the active one, or 'heuristic')"
    )
    p.add_argument("b", metavar="B", help="the candidate version")
    add_split_and_outputs(p)
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument(
        "--max-cases",
        type=int,
        default=50,
        metavar="N",
        help="list at most N disagreeing cases on the terminal (default 50; 0 for all); "
        "the JSON always has all of them",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.evaluation import compare, format_comparison, format_table, heatmap_png

    if args.a == args.b:
        raise CommandError(f"compare needs two different versions; got {args.a!r} twice")
    if args.n_boot < 1:
        raise CommandError(f"--n-boot must be at least 1; got {args.n_boot}")
    store = open_workspace_store(args)
    try:
        cases = load_cases(store, args.split)
        if not cases:
            raise CommandError(f"the workspace has no cases in the {args.split} split")
        set_a = load_verdict_set(store, args.a, cases, args.split, args.knowledge)
        set_b = load_verdict_set(store, args.b, cases, args.split, args.knowledge)
    finally:
        store.close()
    partial = False
    for vs in (set_a, set_b):
        missing = [c.case_id for c in cases if c.case_id not in vs.verdicts]
        if missing:
            report_missing("compare", vs.version, missing)
            partial = True
    paired = [c for c in cases if c.case_id in set_a.verdicts and c.case_id in set_b.verdicts]
    if not paired:
        raise CommandError(
            f"{args.a!r} and {args.b!r} have no case of the {args.split} split in common"
        )
    try:
        comp = compare(
            paired,
            [set_a.verdicts[c.case_id] for c in paired],
            [set_b.verdicts[c.case_id] for c in paired],
            n_boot=args.n_boot,
            seed=args.seed,
            name_a=args.a,
            name_b=args.b,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    print(f"{args.b} vs {args.a} on the {args.split} split, {len(paired)} paired cases")
    print(format_table([(args.a, comp.a), (args.b, comp.b)]))
    print()
    print(format_comparison(comp, max_disagreements=args.max_cases or None))
    if args.json:
        doc = {"split": args.split, "sources": {args.a: set_a.source, args.b: set_b.source}}
        write_json(args.json, {**doc, **comp.to_dict()})
        print(f"\nWrote {args.json}")
    if args.png:
        heatmap_png(comp, args.png, title=f"{args.b} vs {args.a} on the {args.split} split")
        print(f"Wrote {args.png}")
    return EXIT_PARTIAL if partial else EXIT_OK
