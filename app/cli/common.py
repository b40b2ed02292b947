"""What every verb shares: the common options, exit codes, the progress bar and error printing."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from app.workspace import Workspace
from core.runtime.progress import Progress, ProgressEvent, json_lines

EXIT_OK = 0
EXIT_PARTIAL = 1  # some rows or items were rejected, and reported
EXIT_FAILED = 2  # usage error, or a failure that changed nothing


class CommandError(Exception):
    """A failure to report in words, with exit code 2, and no traceback."""


def add_common(parser: argparse.ArgumentParser, progress: bool = False) -> None:
    """``--workspace`` on every verb; ``--progress`` on the long ones."""
    parser.add_argument(
        "--workspace",
        metavar="DIR",
        help="workspace folder (default: $MEDREVIEW_WORKSPACE, else the user data folder)",
    )
    if progress:
        parser.add_argument(
            "--progress",
            choices=("bar", "json", "none"),
            default="bar" if sys.stderr.isatty() else "none",
            help="progress display: a bar on the terminal, JSON lines on stdout, or none",
        )


def add_numerics(parser: argparse.ArgumentParser, default_help: str = "portable") -> None:
    """``--numerics`` on the verbs that build the demo models (``core.runtime.numerics``). The
    default is ``None``: ``apply_numerics`` then asks the verb's ``numerics_default`` (``demo
    models`` follows what ``demo create`` was given), else portable."""
    parser.add_argument(
        "--numerics",
        choices=("portable", "native"),
        default=None,
        help="CPU arithmetic: 'portable' pins torch, MKL, oneDNN and NumPy to their AVX2 kernels "
        "and one thread, so this machine (and, as checked so far, others like it with the same "
        "packages) builds the same demo models run after run, about 15-20%% slower; 'native' "
        "uses this CPU's fastest kernels and threads, whose last bits differ between machines "
        f"(default {default_help})",
    )


def apply_numerics(args: argparse.Namespace) -> None:
    """Pin portable numerics when the verb asks for it, before anything loads NumPy or torch;
    say so on stderr when this CPU cannot (the models then use its own kernels). Called by
    ``main`` before the verb runs, so it must not import NumPy or torch itself."""
    if not hasattr(args, "numerics") or getattr(args, "from_json", None):
        return  # not a verb that computes (benchmark --from-json only renders a table)
    choice = args.numerics
    if choice is None:
        pick = getattr(args, "numerics_default", None)
        choice = (pick(args) if pick is not None else None) or "portable"
        args.numerics = choice
    from core.runtime.numerics import clear_portable_numerics, use_portable_numerics

    if choice != "portable":
        clear_portable_numerics()
        return

    reason = use_portable_numerics()
    if reason is not None and "was loaded before" not in reason:
        print(
            f"note: portable numerics is off: {reason}; the demo models may differ from the "
            "documented ones in their last bits, and so in some answers",
            file=sys.stderr,
        )


def quiet_ml_libraries() -> None:
    """Keep the log a clinician reads to what matters: no per-map progress bars from datasets,
    no deprecation notices about library internals (they are for us, not for the user)."""
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    for module in ("transformers", "trl", "peft", "datasets", "accelerate", "torch"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)


def workspace(args: argparse.Namespace) -> Workspace:
    return Workspace.resolve(getattr(args, "workspace", None))


class _Bar:
    """A tqdm bar per stage, on stderr."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._stage: str | None = None

    def __call__(self, ev: ProgressEvent) -> None:
        from tqdm import tqdm

        if ev.stage != self._stage or self._bar is None:
            if self._bar is not None:
                self._bar.close()
            self._bar = tqdm(total=ev.total, desc=ev.stage, file=sys.stderr, leave=True)
            self._stage = ev.stage
        bar = self._bar
        if ev.total is not None and bar.total != ev.total:
            bar.total = ev.total
        post = {
            k: f"{v:.4g}"
            for k, v in (("loss", ev.loss), ("reward", ev.reward), ("kl", ev.kl))
            if v is not None
        }
        if post:
            bar.set_postfix(post, refresh=False)
        bar.n = ev.step
        bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@contextmanager
def cancel_on_sigterm(progress: Progress) -> Iterator[None]:
    """While inside, SIGTERM (the GUI's Cancel) asks ``progress`` to stop at the next step, so the
    verb can clean up and say how it ended, instead of dying half-way."""
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda signum, frame: progress.cancel())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def progress_for(args: argparse.Namespace) -> Iterator[Progress]:
    """The ``Progress`` that ``--progress`` asks for; closes the bar at the end."""
    mode = getattr(args, "progress", "none")
    if mode == "json":
        yield json_lines()
    elif mode == "bar":
        bar = _Bar()
        try:
            yield Progress(bar)
        finally:
            bar.close()
    else:
        yield Progress()
