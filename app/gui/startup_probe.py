"""Open the window on a workspace, wait for the first case, print one JSON line, and quit.

``python -m app.gui.startup_probe WORKSPACE`` is what the start-up test and the benchmark run in a
fresh interpreter: it prints the wall-clock time (``time.time()``) at which the first case (its
text, verdicts and image) was on screen, and which heavy ML libraries were imported by then, so
the caller can measure start to first case from before it launched the process, and whether
SQLAlchemy was loaded by then (it is not, on an up-to-date SQLite store: app.gui.preload).
"""

from __future__ import annotations

import json
import sys
import time

HEAVY = ("torch", "transformers", "trl", "peft", "open_clip")


def main(argv: list[str]) -> int:
    from app.gui.app import application, build_window
    from app.settings import load_settings
    from app.workspace import Workspace

    # As ``app.gui.app.run`` does: the store preload starts before Qt is imported.
    window = build_window(Workspace.resolve(argv[0]), load_settings())
    app = application()
    result: dict[str, object] = {}

    def shown() -> None:
        result.update(
            shown_at=time.time(),
            heavy=[m for m in HEAVY if m in sys.modules],
            # False on an up-to-date SQLite store: the first case came from the quick reader.
            sqlalchemy_loaded="sqlalchemy" in sys.modules,
            case_id=window.review.shown.case.case_id if window.review.shown else None,
            has_image=window.review_view.image.viewer.has_image(),
            visible=window.isVisible(),
            errors=window.errors,
        )
        app.quit()

    if window.first_case_shown:
        shown()
    else:
        window.firstCaseShown.connect(shown)
        window.show()
        app.exec()
    window.close()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
