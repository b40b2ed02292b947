"""``medreview gui`` (and ``medreview`` with no verb): open the reviewer app on the workspace."""

from __future__ import annotations

import argparse

from app.cli.common import add_common


def register(sub: argparse._SubParsersAction, verb: str, help_: str) -> None:
    p = sub.add_parser(verb, help=help_, description=help_)
    add_common(p)
    p.add_argument(
        "--settings", metavar="FILE", help="settings file (default: the user config folder)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app.gui.app import run as run_gui

    return run_gui(args.workspace, Path(args.settings) if args.settings else None)
