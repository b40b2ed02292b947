"""All background work of the GUI goes through here (Anki's ``aqt/operations`` + ``taskman``).

Three kinds of work, one rule: callbacks (success, failure, progress) always run on the GUI
thread, and no worker ever touches a widget.

* ``Lane``: one worker thread that runs jobs in order. The app has a ``db`` lane (the only
  place that writes to the store; it owns its own ``Store`` instance, because a Store is used by
  one thread at a time), an ``io`` lane (image decoding and prefetch) and an ``inference`` lane.
* ``ChildProcess``: a ``QProcess`` running a ``medreview`` verb with ``--progress json``
  (training, compare, demo creation, import, export). Each stdout line that is a JSON progress
  object becomes a ``ProgressEvent``; every other line goes to the log. Cancel is SIGTERM.
* ``ErrorSink``: the one place every failure reaches unless the caller handles it; the main
  window shows it in a dialog, in words.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from app.qt import QObject, QProcess, QProcessEnvironment, Qt, Signal
from core.runtime.progress import Canceled, Progress, ProgressEvent

log = logging.getLogger(__name__)


def describe(exc: BaseException) -> str:
    """An exception in words for a dialog. Errors our code raises to be read (the store's,
    bad input, files) are their own message; anything else is unexpected: one sentence naming
    the log file that holds its traceback (app/errors.py), never the traceback itself."""
    from feedback_db import StoreError

    text = str(exc).strip()
    if isinstance(exc, StoreError | ValueError | OSError) and text:
        return text.splitlines()[0]
    from app.errors import describe_unexpected

    return describe_unexpected(exc, "a background task of the window")


class ErrorSink(QObject):
    """Where every unhandled worker error goes; the main window connects ``error`` to a dialog."""

    error = Signal(str, str)  # title, message in words

    def report(self, title: str, message: str) -> None:
        log.error("%s: %s", title, message)
        self.error.emit(title, message)


class _Relay(QObject):
    """Lives on the GUI thread; a callable emitted from any thread runs there, always later from
    the event loop (queued even when emitted on the GUI thread, so a callback never runs inside
    the ``submit`` call that scheduled it)."""

    call = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.call.connect(self._run, Qt.ConnectionType.QueuedConnection)

    def _run(self, fn: Callable[[], None]) -> None:
        fn()


class Job:
    """A submitted job: its future and its cancel flag (``Progress.cancel``)."""

    def __init__(self, future: Future[Any], progress: Progress) -> None:
        self.future = future
        self.progress = progress

    def cancel(self) -> None:
        self.progress.cancel()
        self.future.cancel()

    def done(self) -> bool:
        return self.future.done()


class Lane:
    """One worker thread; jobs run in submission order, callbacks on the GUI thread.

    ``resource`` (for the db lane: a function that opens the lane's Store) is created on the
    worker thread at the first job and passed to every job as its first argument; ``close``
    runs on the worker thread at shutdown.
    """

    def __init__(
        self,
        name: str,
        relay: _Relay,
        sink: ErrorSink,
        resource: Callable[[], Any] | None = None,
        close: Callable[[Any], None] | None = None,
    ) -> None:
        self.name = name
        self._relay = relay
        self._sink = sink
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"lane-{name}")
        self._make_resource = resource
        self._close_resource = close
        self._resource: Any = None
        self._closed = False

    def _get_resource(self) -> Any:
        if self._resource is None and self._make_resource is not None:
            self._resource = self._make_resource()
        return self._resource

    def submit(
        self,
        fn: Callable[..., Any],
        *,
        on_success: Callable[[Any], None] | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
        on_progress: Callable[[ProgressEvent], None] | None = None,
        what: str = "background task",
    ) -> Job:
        """Run ``fn`` on this lane.

        ``fn`` is called as ``fn(progress)``, or ``fn(resource, progress)`` on a lane with a
        resource. Its return value goes to ``on_success``; an exception goes to ``on_failure``
        or, when there is none, to the error sink with ``what`` as the title. A ``Canceled``
        exception is not an error: it calls neither.
        """
        if self._closed:
            raise RuntimeError(f"the {self.name} lane is shut down")
        relay = self._relay

        def emit_progress(event: ProgressEvent) -> None:
            if on_progress is not None:
                relay.call.emit(lambda: on_progress(event))

        progress = Progress(emit_progress)

        def work() -> Any:
            progress.check()
            if self._make_resource is not None:
                return fn(self._get_resource(), progress)
            return fn(progress)

        future = self._executor.submit(work)

        def finished(fut: Future[Any]) -> None:
            if fut.cancelled():
                return
            exc = fut.exception()
            if exc is None:
                result = fut.result()
                if on_success is not None:
                    relay.call.emit(lambda: on_success(result))
            elif isinstance(exc, Canceled):
                return
            elif on_failure is not None:
                relay.call.emit(lambda: on_failure(exc))
            else:
                detail = describe(exc)
                relay.call.emit(lambda: self._sink.report(what, detail))

        future.add_done_callback(finished)
        return Job(future, progress)

    def shutdown(self) -> None:
        """Finish queued jobs, close the resource on its own thread, stop the thread."""
        if self._closed:
            return
        self._closed = True

        def close() -> None:
            if self._resource is not None and self._close_resource is not None:
                self._close_resource(self._resource)
            self._resource = None

        self._executor.submit(close)
        self._executor.shutdown(wait=True, cancel_futures=False)


class Operations:
    """The app's lanes and its error sink; ``shutdown`` when the window closes."""

    def __init__(self, open_writer: Callable[[], Any] | None = None) -> None:
        self.sink = ErrorSink()
        self._relay = _Relay()
        self.db = Lane("db", self._relay, self.sink, open_writer, lambda store: store.close())
        self.io = Lane("io", self._relay, self.sink)
        self.inference = Lane("inference", self._relay, self.sink)

    def shutdown(self) -> None:
        for lane in (self.db, self.io, self.inference):
            lane.shutdown()


def medreview_command(verb_args: Sequence[str]) -> tuple[str, list[str]]:
    """Program and arguments that run ``medreview <verb_args>`` with this interpreter."""
    return sys.executable, ["-u", "-m", "app.cli.main", *verb_args]


class ChildProcess(QObject):
    """A ``medreview`` verb in a child process, read line by line without blocking the window.

    Signals: ``progress(ProgressEvent)`` for each JSON progress line, ``line(str)`` for every
    other stdout line, ``problem(str)`` for each stderr line (errors and per-row rejections are
    reported there), ``finished(int, str)`` with the exit code and the
    final state in words ("done", "partial" (exit 1: some rows rejected, and reported),
    "failed: ...", "canceled").
    """

    progress = Signal(object)
    line = Signal(str)
    problem = Signal(str)
    finished = Signal(int, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._proc = QProcess(self)
        self._proc.readyReadStandardOutput.connect(self._read_stdout)
        self._proc.readyReadStandardError.connect(self._read_stderr)
        self._proc.finished.connect(self._on_finished)
        self._proc.errorOccurred.connect(self._on_error)
        self._buf = {"out": b"", "err": b""}
        self._stderr_tail: list[str] = []
        self._last_stage: str | None = None
        self._last_message: str | None = None
        self._canceled = False
        self._reported = False

    @property
    def running(self) -> bool:
        return self._proc.state() != QProcess.ProcessState.NotRunning

    def start(
        self,
        verb_args: Sequence[str],
        env: dict[str, str] | None = None,
        low_priority: bool = False,
    ) -> None:
        """Start ``medreview <verb_args>``; output and the end arrive as signals.

        ``low_priority``: run it under ``nice`` (where there is one), for work that goes on in
        the background while the clinician reviews, so the window keeps the CPU it needs.
        """
        program, args = medreview_command(verb_args)
        if low_priority and sys.platform != "win32":
            import shutil

            nice = shutil.which("nice")
            if nice:
                program, args = nice, ["-n", "10", program, *args]
        penv = QProcessEnvironment.systemEnvironment()
        penv.insert("PYTHONUNBUFFERED", "1")
        penv.insert("HF_HUB_OFFLINE", "1")
        for key, value in (env or {}).items():
            penv.insert(key, value)
        self._proc.setProcessEnvironment(penv)
        self._reported = False
        self._canceled = False
        self.line.emit("$ medreview " + " ".join(verb_args))
        self._proc.start(program, args)

    def terminate(self) -> None:
        """Ask the child to stop (SIGTERM); it reports "canceled" when it has."""
        if self.running:
            self._canceled = True
            self.line.emit("Cancel requested (SIGTERM sent)…")
            self._proc.terminate()

    def kill(self) -> None:
        if self.running:
            self._proc.kill()

    def wait(self, ms: int = 5000) -> bool:
        return self._proc.waitForFinished(ms)

    def _split(self, key: str, data: bytes) -> list[str]:
        buf = self._buf[key] + data
        *lines, rest = buf.split(b"\n")
        self._buf[key] = rest
        return [ln.decode("utf-8", "replace").rstrip("\r") for ln in lines]

    def _handle_stdout_line(self, text: str) -> None:
        stripped = text.strip()
        if stripped.startswith("{"):
            try:
                event = ProgressEvent.from_json(stripped)
            except (json.JSONDecodeError, TypeError, ValueError):
                event = None
            if event is not None:
                self._last_stage = event.stage
                if event.message:
                    self._last_message = event.message
                self.progress.emit(event)
                return
        if stripped:
            self.line.emit(text)

    def _read_stdout(self) -> None:
        for text in self._split("out", bytes(self._proc.readAllStandardOutput().data())):
            self._handle_stdout_line(text)

    def _read_stderr(self) -> None:
        for text in self._split("err", bytes(self._proc.readAllStandardError().data())):
            if text.strip():
                self._stderr_tail = (self._stderr_tail + [text])[-20:]
                self.problem.emit(text)

    def _flush(self) -> None:
        self._read_stdout()
        self._read_stderr()
        for key in ("out", "err"):
            rest, self._buf[key] = self._buf[key], b""
            if rest.strip():
                text = rest.decode("utf-8", "replace")
                if key == "out":
                    self._handle_stdout_line(text)
                else:
                    self._stderr_tail.append(text)
                    self.problem.emit(text)

    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._flush()
        if self._reported:
            return
        self._reported = True
        if self._canceled or self._last_stage == "canceled":
            self.finished.emit(code, "canceled")
        elif (
            code == 0 and status == QProcess.ExitStatus.NormalExit and self._last_stage != "failed"
        ):
            self.finished.emit(code, "done")
        elif (
            code == 1 and status == QProcess.ExitStatus.NormalExit and self._last_stage != "failed"
        ):
            self.finished.emit(
                code, "partial"
            )  # docs/architecture.md: exit 1 = some rows were rejected
        else:
            why = self._last_message if self._last_stage == "failed" else None
            why = why or (self._stderr_tail[-1] if self._stderr_tail else None)
            if status == QProcess.ExitStatus.CrashExit:
                why = why or "the process crashed"
            self.finished.emit(code, f"failed: {why or f'exit code {code}'}")

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and not self._reported:
            self._reported = True
            self.finished.emit(-1, f"failed: could not start {sys.executable}")


def thread_count() -> int:
    """Live Python threads (tests check that none is left running)."""
    return threading.active_count()
