"""``medreview db {info,upgrade}``: the feedback store's schema and contents.

    medreview db info [--json]     where the store is, its schema revision, rows per table
    medreview db upgrade           bring the schema up to date (a backup copy is made first)

``info`` changes nothing, not even an out-of-date schema. Exit 0 on success, 2 when there is no
database or it cannot be read or upgraded.
"""

from __future__ import annotations

import argparse
import json

from app.cli.common import EXIT_OK, CommandError, add_common, workspace


def register(sub: argparse._SubParsersAction, verb: str, help_: str) -> None:
    p = sub.add_parser(verb, help=help_, description=__doc__.split("\n\n")[0] if __doc__ else help_)
    actions = p.add_subparsers(dest="db_action", metavar="ACTION", required=True)
    info = actions.add_parser("info", help="schema revision and rows per table (changes nothing)")
    add_common(info)
    info.add_argument(
        "--json", action="store_true", help="print the information as one JSON object"
    )
    info.set_defaults(func=run_info)
    up = actions.add_parser("upgrade", help="upgrade the schema to this program's (backup first)")
    add_common(up)
    up.set_defaults(func=run_upgrade)


def run_info(args: argparse.Namespace) -> int:
    from feedback_db import StoreError, inspect_store

    ws = workspace(args)
    try:
        info = inspect_store(ws.db_url)
    except StoreError as exc:
        raise CommandError(f"{exc} (workspace {ws.root})") from exc
    if args.json:
        print(
            json.dumps(
                {
                    "url": info.url,
                    "revision": info.revision,
                    "head": info.head,
                    "up_to_date": info.up_to_date,
                    "counts": info.counts,
                }
            )
        )
        return EXIT_OK
    state = "up to date" if info.up_to_date else "needs `medreview db upgrade`"
    print(f"store:     {info.url}")
    print(f"workspace: {ws.root}")
    print(f"schema:    {info.revision or 'none'} (this program: {info.head}; {state})")
    width = max((len(t) for t in info.counts), default=0)
    for table, n in info.counts.items():
        print(f"  {table:<{width}}  {n}")
    return EXIT_OK


def run_upgrade(args: argparse.Namespace) -> int:
    from feedback_db import StoreError, inspect_store, open_store

    ws = workspace(args)
    try:
        before = inspect_store(ws.db_url)
        store = open_store(ws.db_url, upgrade=True)
    except StoreError as exc:
        raise CommandError(str(exc)) from exc
    try:
        after = store.info()
        if store.backup_path is None:
            print(f"{after.url}: already at schema {after.head}; nothing to do")
        else:
            print(f"{after.url}: upgraded schema {before.revision} -> {after.revision}")
            print(f"backup of the database before the upgrade: {store.backup_path}")
    finally:
        store.close()
    return EXIT_OK
