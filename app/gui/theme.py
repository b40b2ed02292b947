"""Themes (dark, the reading-room default, and light), the text size, and a contrast check.

Each theme is a style sheet in ``resources/`` (``style-dark.qss``, ``style.qss``) plus the few
colours that code paints itself (the plot, the queue's status column, the viewer's overlays),
kept here in ``PALETTES`` so both come from one place. The text size is applied by scaling every
``font-size: Npx`` of the sheet and the application font, so nothing in the sheet needs a
placeholder and the files stay plain QSS.

``contrast_report`` reads a sheet's rules and measures the WCAG 2 contrast ratio of every text
colour against the background it is drawn on (the rule's own, else the theme's surfaces), so a
test can hold both themes to the 4.5:1 that WCAG asks of body text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
SHEETS = {"light": RESOURCES / "style.qss", "dark": RESOURCES / "style-dark.qss"}
BASE_FONT_PX = 13  # the sheet's body size at scale 1.0

#: colours painted by code, per theme. ``window`` and ``panel`` are the surfaces text sits on.
PALETTES: dict[str, dict[str, str]] = {
    "light": {
        "window": "#f4f6f8",
        "panel": "#ffffff",
        "text": "#1d232b",
        "muted": "#4f5966",
        "grid": "#c9ced6",
        "plot_bg": "#ffffff",
        "loss": "#c23b0c",
        "reward": "#1f6b27",
        "kl": "#1557a8",
        "rated": "#1e6b34",
        "to_rate": "#7a4f00",
        "accent": "#1f5fa8",
        "overlay_bg": "#f8fafc",
        "overlay_text": "#1d232b",
        "heat_text_dark": "#10151b",
        "heat_text_light": "#ffffff",
    },
    "dark": {
        "window": "#15181c",
        "panel": "#1e2329",
        "text": "#e6e9ed",
        "muted": "#a9b3be",
        "grid": "#3a434e",
        "plot_bg": "#1a1e23",
        "loss": "#ff8a65",
        "reward": "#81c784",
        "kl": "#64b5f6",
        "rated": "#81c784",
        "to_rate": "#ffca6b",
        "accent": "#6aa6ec",
        "overlay_bg": "#20262d",
        "overlay_text": "#e6e9ed",
        "heat_text_dark": "#10151b",
        "heat_text_light": "#ffffff",
    },
}
#: the image viewer is black in both themes: grey levels are judged against black
VIEWER_BG = "#0b0d0f"
VIEWER_TEXT = "#d7dbe0"


@dataclass(frozen=True)
class Theme:
    name: str
    font_scale: float

    def colour(self, key: str) -> str:
        return PALETTES[self.name][key]


_active = Theme("dark", 1.0)


def active() -> Theme:
    """The theme the application shows now (set by ``apply_theme``)."""
    return _active


def colour(key: str) -> str:
    """A code-painted colour of the active theme (``PALETTES``)."""
    return _active.colour(key)


def scale_fonts(sheet: str, scale: float) -> str:
    """``sheet`` with every ``font-size: Npx`` multiplied by ``scale`` (rounded, at least 8 px)."""

    def repl(m: re.Match[str]) -> str:
        return f"font-size: {max(8, round(float(m.group(1)) * scale))}px"

    return re.sub(r"font-size:\s*(\d+(?:\.\d+)?)px", repl, sheet)


def style_sheet(name: str, scale: float = 1.0) -> str:
    """The theme's style sheet at text size ``scale``."""
    return scale_fonts(SHEETS[name].read_text(encoding="utf-8"), scale)


def apply_theme(app, name: str, scale: float = 1.0) -> None:
    """Apply theme ``name`` and text size ``scale`` to the running application: the Fusion style
    (the same widgets on every platform, and one that follows the palette), a palette for what
    the sheet does not reach (menus, tooltips, scroll bars), the sheet, and the base font."""
    global _active
    from app.qt import QColor, QPalette

    if name not in SHEETS:
        raise ValueError(f"unknown theme {name!r}")
    look = f"{name}@{float(scale)}"
    if app.property("medreviewLook") == look:
        return  # already applied: re-applying a sheet re-polishes every widget
    _active = Theme(name, float(scale))
    # Once per application (the style's own object is never touched again: Qt owns and replaces
    # it, and a Python handle on an old style would point at freed memory).
    if not app.property("medreviewFusion"):
        app.setStyle("Fusion")
        app.setProperty("medreviewFusion", True)
    c = PALETTES[name]
    pal = QPalette()
    role = QPalette.ColorRole
    for r, key in (
        (role.Window, "window"),
        (role.Base, "panel"),
        (role.AlternateBase, "window"),
        (role.Button, "panel"),
        (role.ToolTipBase, "overlay_bg"),
    ):
        pal.setColor(r, QColor(c[key]))
    for r in (role.WindowText, role.Text, role.ButtonText, role.ToolTipText, role.BrightText):
        pal.setColor(r, QColor(c["text"]))
    pal.setColor(role.PlaceholderText, QColor(c["muted"]))
    pal.setColor(role.Highlight, QColor(c["accent"]))
    pal.setColor(role.HighlightedText, QColor("#ffffff" if name == "light" else "#0b0d0f"))
    pal.setColor(QPalette.ColorGroup.Disabled, role.Text, QColor(c["muted"]))
    pal.setColor(QPalette.ColorGroup.Disabled, role.ButtonText, QColor(c["muted"]))
    app.setPalette(pal)
    font = app.font()
    font.setPixelSize(max(8, round(BASE_FONT_PX * scale)))
    app.setFont(font)
    app.setStyleSheet(style_sheet(name, scale))
    app.setProperty("medreviewLook", look)


# -- contrast ----------------------------------------------------------------------------------
def _linear(channel: float) -> float:
    return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4


def luminance(hex_colour: str) -> float:
    """WCAG 2 relative luminance of ``#rrggbb`` (or ``#rgb``)."""
    h = hex_colour.lstrip("#")
    if len(h) == 3:
        h = "".join(ch * 2 for ch in h)
    r, g, b = (int(h[i : i + 2], 16) / 255.0 for i in (0, 2, 4))
    return 0.2126 * _linear(r) + 0.7152 * _linear(g) + 0.0722 * _linear(b)


def contrast_ratio(fg: str, bg: str) -> float:
    """WCAG 2 contrast ratio of two colours, 1 (none) to 21 (black on white)."""
    a, b = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (a + 0.05) / (b + 0.05)


_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
_HEX = r"#[0-9a-fA-F]{6}\b|#[0-9a-fA-F]{3}\b"


def _prop(body: str, name: str) -> str | None:
    m = re.search(rf"(?:^|;|\s){name}\s*:\s*({_HEX})", body)
    return m.group(1) if m else None


def contrast_report(name: str) -> list[tuple[str, str, str, float]]:
    """(selector, text colour, background, ratio) for every rule of theme ``name`` that sets a
    text colour. A rule without its own background is measured against both of the theme's text
    surfaces (window and panel) and reported with the worse one. Disabled states are left out
    (WCAG exempts inactive controls)."""
    sheet = re.sub(r"/\*.*?\*/", "", SHEETS[name].read_text(encoding="utf-8"), flags=re.S)
    surfaces = [PALETTES[name]["window"], PALETTES[name]["panel"]]
    out = []
    for selectors, body in _RULE.findall(sheet):
        fg = _prop(body, "color")
        if fg is None:
            continue
        bg = _prop(body, "background-color") or _prop(body, "background")
        for selector in (s.strip() for s in selectors.split(",")):
            if ":disabled" in selector:
                continue
            candidates = [bg] if bg else surfaces
            worst = min(candidates, key=lambda b: contrast_ratio(fg, b))
            out.append((selector, fg, worst, contrast_ratio(fg, worst)))
    return out
