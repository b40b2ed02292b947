"""The one door to Qt (Anki's ``aqt/qt`` idea).

Every GUI module imports Qt names from here (``from app.qt import QWidget, Qt, Signal``), so a Qt
upgrade or a change of binding touches this file only. Only the Essentials modules (QtCore,
QtGui, QtWidgets) are used: they are what ``PySide6-Essentials`` ships.
"""

from __future__ import annotations

from PySide6 import __version__ as PYSIDE_VERSION  # noqa: F401
from PySide6.QtCore import *  # noqa: F403
from PySide6.QtCore import QObject, QThread, Signal, Slot  # noqa: F401  (explicit for readers)

# The three modules each define a few list helpers (QIntList, ...) under the same names; which one
# wins does not matter to us, so mypy's redefinition complaint is silenced here only.
from PySide6.QtGui import *  # type: ignore[assignment]  # noqa: F403
from PySide6.QtWidgets import *  # type: ignore[assignment]  # noqa: F403

QT_BINDING = "PySide6"
