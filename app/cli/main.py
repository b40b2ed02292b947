"""Entry point of ``medreview``: parse the verb, run it, map failures to exit codes.

Each verb lives in its own module with ``register(sub, verb, help)``; the module sets ``func`` on its
parser. A verb whose module is not there yet is registered as a placeholder that says so and exits
2, so no command pretends to work. Heavy libraries are imported by the verbs that need them, so
``medreview --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from app.cli.common import EXIT_FAILED, CommandError, add_common, apply_numerics

# (verb, module, one-line help) in the order --help lists them.
VERBS: tuple[tuple[str, str, str], ...] = (
    ("gui", "app.cli.gui", "open the reviewer app on the workspace (the default verb)"),
    (
        "demo",
        "app.cli.demo",
        "create the demo workspace: synthetic cases, demo models, predictions",
    ),
    (
        "import",
        "app.cli.importing",
        "import cases (manifest or folder) or ratings (expert_feedback.jsonl)",
    ),
    (
        "export",
        "app.cli.export",
        "export ratings as expert_feedback.jsonl (TRL preference or KTO format)",
    ),
    (
        "models",
        "app.cli.models",
        "list model versions, or register a real model (HF cache or folder)",
    ),
    ("predict", "app.cli.predict", "run a model version over the workspace's cases or a manifest"),
    ("evaluate", "app.cli.evaluate", "score a model version's verdicts against the ground truth"),
    ("train", "app.cli.train", "train: encoder, sft, reward, ppo, grpo, dpo, or the retrain"),
    ("compare", "app.cli.compare", "compare two model versions on the same held-out cases"),
    ("db", "app.cli.db", "the feedback store: info, upgrade"),
    ("benchmark", "app.cli.benchmark", "reproduce the plan's table on the demo benchmark"),
)


def _placeholder(sub: argparse._SubParsersAction, verb: str, help_: str) -> None:
    p = sub.add_parser(
        verb, help=f"{help_} (not available yet)", description=f"{help_}. Not available yet."
    )
    add_common(p)
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    def run(args: argparse.Namespace) -> int:
        print(f"medreview {verb}: not available yet in this version.", file=sys.stderr)
        return EXIT_FAILED

    p.set_defaults(func=run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medreview",
        description=(
            "MedGemma Reviewer: review an AI model's verdicts on medical images, rate them, "
            "and retrain the model on your ratings, offline. With no verb, opens the app."
        ),
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, module, help_ in VERBS:
        if importlib.util.find_spec(module) is None:
            _placeholder(sub, verb, help_)
        else:
            importlib.import_module(module).register(sub, verb, help_)
    return parser


# Verbs (and actions) that write to the workspace; refused in words on a read-only one.
WRITING: tuple[tuple[str, str | None], ...] = (
    ("demo", None),
    ("import", None),
    ("predict", None),
    ("train", None),
    ("db", "upgrade"),
    ("models", "add"),
    ("models", "activate"),
    ("benchmark", None),
)


def _refuse_writes_to_read_only(args: argparse.Namespace) -> None:
    from app.workspace import Workspace

    action = next(
        (
            getattr(args, a)
            for a in ("db_action", "models_verb", "demo_verb")
            if getattr(args, a, None)
        ),
        None,
    )
    if not any(args.verb == verb and (sub is None or sub == action) for verb, sub in WRITING):
        return
    try:
        ws = Workspace.resolve(getattr(args, "workspace", None))
    except ValueError:
        return  # the verb itself says what is wrong with the workspace
    if ws.read_only:
        raise CommandError(
            f"the workspace {ws.root} is read-only, and `{args.verb}` would write to it; "
            "copy it to a folder you can write to, or use db info / export / the app to read it"
        )


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("--workspace")):
        argv = ["gui", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    apply_numerics(args)
    try:
        _refuse_writes_to_read_only(args)
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"medreview {args.verb}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"medreview {args.verb}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - no traceback reaches a user: one sentence, details logged
        from app.errors import describe_unexpected

        print(
            f"medreview {args.verb}: {describe_unexpected(exc, f'medreview {args.verb}')}",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
