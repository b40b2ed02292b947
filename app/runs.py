"""Training runs that survive a kill -9 at any instant: a lease per run, and reconciliation.

A training verb holds a ``RunLease`` from start to end:

1. It records the run in the store (``running``) and takes an exclusive ``flock`` on
   ``<workspace>/runs/run-<id>.lock``, a small JSON file naming the run, its process and, once
   known, the version it will register. The operating system drops the lock when the process
   dies, however it dies, so "the lock can be taken" means "its owner is gone".
2. All its temporary output goes under ``runs/run-<id>/`` (``lease.work``).
3. Before the registry renames the finished folder into ``models/<version>/`` the lease notes the
   version (``lease.registering``), then the store records version, verdicts, evaluation and the
   end of the run in ONE transaction (``Store.record_trained_version``).

``reconcile`` (run at every GUI start-up and before every training run) looks at each lock file it
can take: the run's owner is dead, so a store run still ``running`` is closed as ``killed``, a
version folder the store does not know (the kill fell between the rename and the store's
commit) is removed, and the run's temporary folder goes. Other leftovers in ``runs/`` that no live
lease owns are removed once they are six hours old. Whatever instant a kill hits, store and registry agree again
afterwards: either the version is registered everywhere, or nowhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.workspace import Workspace

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"
PREFIX = "run-"
LEFTOVER_AGE_S = 6 * 3600


def _write_json(fh: Any, data: dict[str, Any]) -> None:
    """Rewrite the open lease file in place (the lock is on the open file, so no rename)."""
    fh.seek(0)
    fh.truncate()
    fh.write(json.dumps(data))
    fh.flush()
    os.fsync(fh.fileno())


@dataclass
class RunLease:
    """One training run's claim on the workspace; see the module docstring.

    Use as a context manager around the whole run. ``run_id`` is the store's training run id;
    ``work`` the run's private temporary folder. On an exception the run is closed as failed
    (or canceled) unless the caller already closed it, and the folder is removed either way.
    """

    ws: Workspace
    kind: str
    config: dict[str, Any]
    parent: str | None
    run_id: int | None = None
    key: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    finished: bool = False
    _fh: Any = None
    _state: dict[str, Any] = field(default_factory=dict)

    @property
    def lock_path(self) -> Path:
        return self.ws.runs_dir / f"{PREFIX}{self.key}{LOCK_SUFFIX}"

    @property
    def work(self) -> Path:
        return self.ws.runs_dir / f"{PREFIX}{self.key}"

    def __enter__(self) -> RunLease:
        from feedback_db import open_store

        self.ws.ensure()
        self._fh = self.lock_path.open("a+", encoding="utf-8")
        fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._state = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "kind": self.kind,
            "started": time.time(),
            "run_id": None,
            "version": None,
        }
        _write_json(self._fh, self._state)
        self.work.mkdir(parents=True, exist_ok=True)
        with open_store(self.ws.db_url) as store:
            run = store.add_training_run(self.kind, self.config, self.parent)
        self.run_id = run.id
        self._state["run_id"] = run.id
        _write_json(self._fh, self._state)
        return self

    def registering(self, version: str) -> None:
        """Note the version about to be moved into ``models/`` (before the rename)."""
        self._state["version"] = version
        _write_json(self._fh, self._state)

    def finish(self, status: str, message: str) -> None:
        """Close the run (failed or canceled); success is closed with the version's rows."""
        from feedback_db import StoreError, open_store

        if self.finished or self.run_id is None:
            return
        try:
            with open_store(self.ws.db_url) as store:
                store.finish_training_run(self.run_id, status, message)
        except StoreError as exc:  # the next reconcile closes it as killed
            log.warning("could not close training run %s: %s", self.run_id, exc)
        self.finished = True

    def __exit__(self, exc_type: Any, exc: BaseException | None, _tb: Any) -> None:
        from core.runtime.progress import Canceled

        try:
            if exc is not None and not self.finished:
                status = "canceled" if isinstance(exc, Canceled | KeyboardInterrupt) else "failed"
                self.finish(status, str(exc) or type(exc).__name__)
            shutil.rmtree(self.work, ignore_errors=True)
        finally:
            if self._fh is not None:
                with contextlib.suppress(OSError):
                    self.lock_path.unlink()
                self._fh.close()  # releases the lock


@dataclass(frozen=True)
class Reconciled:
    """What a reconcile did, for the log and the tests."""

    runs_closed: list[int]
    folders_removed: list[str]
    leftovers_removed: list[str]

    def __bool__(self) -> bool:
        return bool(self.runs_closed or self.folders_removed or self.leftovers_removed)


def _take(path: Path) -> tuple[Any, dict[str, Any]] | None:
    """Open and lock a lease file whose owner is gone; None while its owner lives."""
    try:
        fh = path.open("r+", encoding="utf-8")
    except OSError:
        return None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        return None
    try:
        data = json.loads(fh.read() or "{}")
    except (json.JSONDecodeError, RecursionError):
        data = {}
    return fh, data if isinstance(data, dict) else {}


def reconcile(ws: Workspace, store: Any | None = None) -> Reconciled:
    """Bring store, registry and ``runs/`` back into agreement after killed runs (module docstring).

    ``store``: an open Store to use (one is opened otherwise). Safe to run while other runs are
    alive: their leases are locked and left alone. Never raises for a leftover it cannot remove.
    """
    from feedback_db import StoreError

    runs = ws.runs_dir
    closed: list[int] = []
    removed: list[str] = []
    leftovers: list[str] = []
    if not runs.is_dir():
        return Reconciled(closed, removed, leftovers)
    live: set[str] = set()
    dead: list[tuple[Path, Any, dict[str, Any]]] = []
    for lock in sorted(runs.glob(f"{PREFIX}*{LOCK_SUFFIX}")):
        taken = _take(lock)
        key = lock.name[: -len(LOCK_SUFFIX)]
        if taken is None:
            live.add(key)
        else:
            dead.append((lock, taken[0], taken[1]))
    if dead:
        from feedback_db import open_store  # only here: it loads SQLAlchemy (app.gui.preload)

        own = store is None
        db: Any = open_store(ws.db_url) if store is None else store
        try:
            for lock, fh, data in dead:
                run_id, version = data.get("run_id"), data.get("version")
                try:
                    if (
                        isinstance(version, str)
                        and version
                        and db.get_model_version(version) is None
                    ):
                        folder = ws.models_dir / version
                        if folder.is_dir():
                            shutil.rmtree(folder, ignore_errors=True)
                            removed.append(version)
                    if isinstance(run_id, int):
                        run = next((r for r in db.training_runs() if r.id == run_id), None)
                        if run is not None and run.status == "running":
                            db.finish_training_run(
                                run_id,
                                "killed",
                                "the training process ended without "
                                "finishing (killed or crashed); nothing was registered",
                            )
                            closed.append(run_id)
                except StoreError as exc:
                    log.warning("reconciling %s: %s", lock.name, exc)
                    fh.close()
                    continue
                shutil.rmtree(runs / lock.name[: -len(LOCK_SUFFIX)], ignore_errors=True)
                with contextlib.suppress(OSError):
                    lock.unlink()
                fh.close()
        finally:
            if own:
                db.close()
    now = time.time()
    for entry in runs.iterdir():
        name = entry.name
        key = name[: -len(LOCK_SUFFIX)] if name.endswith(LOCK_SUFFIX) else name
        if key in live:
            continue
        # A folder no lease owns belongs to a killed run of an older version of the program, or
        # to a verb that is still running without a lease (``models add`` copying a model): only
        # the ones untouched for LEFTOVER_AGE_S are removed.
        if not key.startswith(PREFIX):
            try:
                if now - entry.stat().st_mtime < LEFTOVER_AGE_S:
                    continue
            except OSError:
                continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
        if not entry.exists():
            leftovers.append(name)
    return Reconciled(closed, removed, leftovers)
