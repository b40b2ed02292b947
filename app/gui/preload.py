"""Start-up preload: open the reading store and run the first queue query on a thread while the
main thread loads Qt and builds the window.

SQLite releases the GIL while it executes a query, so the first queue query (the most expensive
read at start: ordering 50,000 cases by uncertainty) runs on the second core while the window is
being built. This module imports no Qt. The reader is handed to the GUI thread after the thread
has been joined (a reader is used by one thread at a time, never two at once).

On an up-to-date SQLite store (the usual case) the preload reads through
``feedback_db.quick_reader`` (plain sqlite3) and never imports SQLAlchemy: its import and the
ORM models are about 0.4 s of CPU that Python's GIL would otherwise add to Qt's, a third of the
start-up budget. The window then gets a ``StartupReader``, which answers the first screen's reads
from the quick reader and opens the full Store on a thread once the first case is on screen
(``start_loading``); from then on every read is the Store's (if it cannot be opened, the window
says why and the first screen's reads go on from sqlite3). Any other store (PostgreSQL, one that
needs an upgrade) goes through the Store from the start, and a read the quick reader does not
answer waits for it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from app.gui.queue_query import Filters, QueueResult, pick_versions, run_queue_query
from app.settings import Settings
from app.workspace import Workspace


class Preload:
    """Opens ``workspace``'s store and queries the queue for ``settings``, on a thread."""

    def __init__(self, workspace: Workspace, settings: Settings) -> None:
        self.workspace = workspace
        self.settings = settings
        self.reader: Any = None
        self.reviewer: Any = None  # None when the reviewer is new (created on the db lane)
        self.versions: tuple[str, str] | None = None
        self.reconciled: Any = None  # what app.runs.reconcile did at start-up
        self.read_only = False  # the workspace cannot be written: review without saving
        self.queue: QueueResult | None = None
        self.filters = Filters(order=settings.queue_order)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="store-preload", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            if not self.workspace.read_only:
                self.workspace.ensure()
            self.read_only = self.workspace.read_only
            self.reader = self._quick_reader() or self._open_store()
            if not self.read_only:
                from app.runs import reconcile

                # A training run killed since the last start: close it, drop its half-made folders
                # (reconcile opens the Store itself only when it finds such a run).
                store = None if isinstance(self.reader, StartupReader) else self.reader
                self.reconciled = reconcile(self.workspace, store)
            name = self.settings.reviewer_name.strip()
            self.reviewer = next((r for r in self.reader.reviewers() if r.name == name), None)
            self.versions = pick_versions(self.reader.model_versions(), self.workspace.review_pair)
            rid = self.reviewer.id if self.reviewer is not None else None
            self.queue = run_queue_query(self.reader, self.filters, rid, self.versions)
        except BaseException as exc:  # noqa: BLE001 (handed to the GUI thread by result())
            self._error = exc

    def _open_store(self) -> Any:
        from feedback_db import open_store

        return open_store(self.workspace.db_url, upgrade=True, read_only=self.read_only)

    def _quick_reader(self) -> StartupReader | None:
        """A StartupReader when the store is an up-to-date SQLite file, else None."""
        path = self.workspace.sqlite_file
        if path is None:
            return None
        from feedback_db.quick_reader import QuickReader

        quick = QuickReader.open(path)
        return None if quick is None else StartupReader(quick, self._open_store)

    def result(self) -> Preload:
        """Wait for the thread; raise what it raised (after closing the store it opened)."""
        self._thread.join()
        if self._error is not None:
            if self.reader is not None:
                self.reader.close()
            raise self._error
        return self


class StartupReader:
    """The GUI thread's reader from start-up on: the quick reader's answers until the Store is
    open, then the Store's (module docstring).

    The Store opens on its own thread at ``start_loading`` (the window calls it once its first
    case is on screen) or, at the latest, when a read the quick reader does not answer needs it;
    that read waits for it. If it fails to open, ``on_failure`` hears of it at once (called on
    the loading thread), the first screen's reads go on from the quick reader, and any other read
    raises the Store's error, in words. Used by one thread at a time, as a Store is.
    """

    QUICK = frozenset(
        {
            "reviewers",
            "model_versions",
            "get_case",
            "get_cases",
            "predictions_for_case",
            "predictions_by_id",
            "current_rating",
            "query_case_ids",
        }
    )

    def __init__(
        self,
        quick: Any,
        open_store: Callable[[], Any],
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._quick = quick
        self._open_store = open_store
        self.on_failure = on_failure
        self._loader: threading.Thread | None = None
        self._loaded: Any = None
        self._error: BaseException | None = None
        self._store: Any = None  # the Store, once the GUI thread has taken it over
        self._closed = False

    def start_loading(self) -> None:
        """Open the Store on a thread (no-op after the first call, and after ``close``)."""
        if self._loader is None and not self._closed:
            self._loader = threading.Thread(target=self._load, name="store-open", daemon=True)
            self._loader.start()

    def _load(self, report: bool = True) -> None:
        try:
            self._loaded = self._open_store()
        except BaseException as exc:  # noqa: BLE001 (raised on the GUI thread by store())
            self._error = exc
            if report and self.on_failure is not None:
                self.on_failure(exc)

    @property
    def ready(self) -> bool:
        """True once the Store is open, or has failed to open (then ``store()`` raises why)."""
        return self._store is not None or (self._loader is not None and not self._loader.is_alive())

    def store(self) -> Any:
        """The Store, opening it (and waiting) if need be.

        Raises:
            feedback_db.StoreError: it cannot be opened (the message in words).
        """
        if self._store is None:
            if self._loader is None and self._closed:
                # A read after close (a late callback): open it here, as a closed Store
                # reconnects; the window is gone, so a failure is not reported, only raised.
                self._load(report=False)
            else:
                self.start_loading()
                assert self._loader is not None
                self._loader.join()
            if self._error is not None:
                raise self._error
            self._store, self._loaded = self._loaded, None
            if self._quick is not None:
                self._quick.close()
                self._quick = None
        return self._store

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self.QUICK:
            return lambda *args, **kwargs: self._read(name, args, kwargs)
        return getattr(self.store(), name)

    def _read(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._quick is not None and (not self.ready or self._error is not None):
            from feedback_db.quick_reader import NotQuick

            try:
                return getattr(self._quick, name)(*args, **kwargs)
            except (NotQuick, sqlite3.Error):  # a filter, or a file problem: the Store says it
                pass
        return getattr(self.store(), name)(*args, **kwargs)

    def close(self) -> None:
        """Close what is open (waiting for a Store still opening). As with a Store, a read after
        this still works: the Store reconnects."""
        self._closed = True
        if self._loader is not None:
            self._loader.join()
            if self._loaded is not None:
                self._store, self._loaded = self._loaded, None
        if self._store is not None:
            self._store.close()
        if self._quick is not None:
            self._quick.close()
            self._quick = None
