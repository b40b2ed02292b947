"""Start-up preload: open the reading store and run the first queue query on a thread while the
main thread loads Qt and builds the window.

SQLite releases the GIL while it executes a query, so the first queue query (the most expensive
read at start: ordering 50,000 cases by uncertainty) runs on the second core while the window is
being built. This module imports no Qt. The reader Store is handed to the GUI thread after the
thread has been joined (a Store is used by one thread at a time, never two at once).
"""

from __future__ import annotations

import threading
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
            from feedback_db import open_store

            if not self.workspace.read_only:
                self.workspace.ensure()
            self.read_only = self.workspace.read_only
            self.reader = open_store(self.workspace.db_url, upgrade=True, read_only=self.read_only)
            if not self.read_only:
                from app.runs import reconcile

                # A training run killed since the last start: close it, drop its half-made folders.
                self.reconciled = reconcile(self.workspace, self.reader)
            name = self.settings.reviewer_name.strip()
            self.reviewer = next((r for r in self.reader.reviewers() if r.name == name), None)
            self.versions = pick_versions(self.reader.model_versions(), self.workspace.review_pair)
            rid = self.reviewer.id if self.reviewer is not None else None
            self.queue = run_queue_query(self.reader, self.filters, rid, self.versions)
        except BaseException as exc:  # noqa: BLE001 (handed to the GUI thread by result())
            self._error = exc

    def result(self) -> Preload:
        """Wait for the thread; raise what it raised (after closing the store it opened)."""
        self._thread.join()
        if self._error is not None:
            if self.reader is not None:
                self.reader.close()
            raise self._error
        return self
