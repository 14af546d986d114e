"""Colours, sizes and fonts, fitted to the panel the kiosk runs on.

Sizes are in dp; `apply` sets Kivy's density so that a design canvas fills the window:
960x800 dp in landscape (1280x800 with the demo panel), 760x1200 dp in portrait. A
1920x1080 panel gets everything 1.35 times larger, a 1080x1920 portrait panel the
portrait arrangements at 1.42. When the panel's diagonal is configured, its real DPI is
known and a warning says when touch targets fall under 15 mm. Large text multiplies the
font sizes; high contrast swaps the palette (white and yellow on black, >= 7:1).
`apply` runs before any widget is built; the app rebuilds its screens when it changes.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

from kivy.core.text import LabelBase
from kivy.metrics import Metrics, dp, sp

log = logging.getLogger("kiosk.ui")


def rgb(hex_: str, a: float = 1.0) -> tuple[float, float, float, float]:
    h = hex_.lstrip("#")
    return (int(h[0:2], 16) / 255, int(h[2:4], 16) / 255, int(h[4:6], 16) / 255, a)


Colour = tuple[float, float, float, float]

NORMAL: dict[str, str] = {
    "BG": "F3F5F9", "SURFACE": "FFFFFF", "TEXT": "111827", "MUTED": "374151",
    "PLACEHOLDER": "5B6472", "PRIMARY": "0B4FC2", "PRIMARY_DOWN": "083A8F",
    "ON_PRIMARY": "FFFFFF", "SUCCESS": "0F6B35", "DANGER": "A61B1B", "WARN_BG": "FFF4CE",
    "WARN_TEXT": "5C3B00", "NEUTRAL": "E2E6EE", "NEUTRAL_DOWN": "C7CDD8", "BORDER": "9AA3B2",
    "TOPBAR": "0B2545", "PROMO": "B03A0A", "FOCUS": "F59E0B",
}
HIGH_CONTRAST: dict[str, str] = {
    "BG": "000000", "SURFACE": "111111", "TEXT": "FFFFFF", "MUTED": "F0F0F0",
    "PLACEHOLDER": "C8C8C8", "PRIMARY": "FFD400", "PRIMARY_DOWN": "C9A700",
    "ON_PRIMARY": "000000", "SUCCESS": "5EEA8D", "DANGER": "FF8080", "WARN_BG": "2A2200",
    "WARN_TEXT": "FFE680", "NEUTRAL": "262626", "NEUTRAL_DOWN": "404040", "BORDER": "FFFFFF",
    "TOPBAR": "000000", "PROMO": "FFB27A", "FOCUS": "00E5FF",
}

BG = SURFACE = TEXT = MUTED = PLACEHOLDER = PRIMARY = PRIMARY_DOWN = ON_PRIMARY = rgb("000000")
SUCCESS = DANGER = WARN_BG = WARN_TEXT = NEUTRAL = NEUTRAL_DOWN = BORDER = TOPBAR = BG
PROMO = FOCUS = BG
DEMO_BG = rgb("2B2B2B")
DEMO_ACCENT = rgb("FFD400")

FONT = "KioskSans"
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
)

# Design canvases (dp) of the customer's area, and the demo panel's share of the width.
LANDSCAPE = (960.0, 800.0)
PORTRAIT_CANVAS = (760.0, 1200.0)
PORTRAIT_BELOW = 0.85         # width/height under this: the portrait arrangements
LARGE_TEXT = 1.3


@dataclass(frozen=True)
class Fit:
    """How the UI is laid out on this window."""
    scale: float              # Kivy density: px per dp
    portrait: bool
    large: bool
    contrast: bool
    demo_px: int              # the demo panel's width (or height when below) in px; 0: none
    touch_mm: float | None    # height of a touch target in mm, when the DPI is known
    demo_below: bool = False  # on a portrait panel the demo panel sits under the screens


def fit(width: int, height: int, *, demo: bool = False, large: bool = False,
        contrast: bool = False, panel_inches: float = 0.0, scale: float = 0.0) -> Fit:
    """The layout for a window of width x height px (pure: tested without a window)."""
    below = demo and width / max(1, height) < PORTRAIT_BELOW
    if below:
        demo_px = int(height * 0.3)
        area_w, area_h = max(1, width), max(1, height - demo_px)
    else:
        demo_px = int(min(440, max(260, width * 0.25))) if demo else 0
        area_w, area_h = max(1, width - demo_px), max(1, height)
    portrait = area_w / area_h < PORTRAIT_BELOW
    cw, ch = PORTRAIT_CANVAS if portrait else LANDSCAPE
    s = scale or max(0.5, min(3.0, area_w / cw, area_h / ch))
    touch_mm = None
    if panel_inches > 0:
        dpi = math.hypot(width, height) / panel_inches
        touch_mm = 88 * s / dpi * 25.4
    return Fit(round(s, 4), portrait, large, contrast, demo_px, touch_mm, below)


# Sizes, set by apply()
SCALE = 1.0
PORTRAIT = False
LARGE = False
CONTRAST = False
TOUCH = GAP = RADIUS = 0.0
FS_SMALL = FS_BODY = FS_BUTTON = FS_TITLE = FS_HUGE = 0.0


def apply(f: Fit) -> None:
    """Set Kivy's density and every size and colour for widgets built from now on."""
    g = globals()
    Metrics.density = f.scale
    for name, hex_ in (HIGH_CONTRAST if f.contrast else NORMAL).items():
        g[name] = rgb(hex_)
    g.update(SCALE=f.scale, PORTRAIT=f.portrait, LARGE=f.large, CONTRAST=f.contrast)
    text = LARGE_TEXT if f.large else 1.0
    g.update(TOUCH=dp(88 if not f.large else 100), GAP=dp(16), RADIUS=dp(14),
             FS_SMALL=sp(22) * text, FS_BODY=sp(28) * text, FS_BUTTON=sp(30) * text,
             FS_TITLE=sp(42) * text, FS_HUGE=sp(60) * text)
    if f.touch_mm is not None and f.touch_mm < 15:
        log.warning("touch targets are %.1f mm high on this panel (under 15 mm): "
                    "set [ui] scale higher", f.touch_mm)


# Import-time defaults (a 1280x800 landscape panel at density 1), for code and tests that
# build widgets without the app.
apply(Fit(float(os.environ.get("KIVY_METRICS_DENSITY", "1") or 1), False, False, False, 0,
          None))


def register_fonts(preferred: str | None = None) -> str:
    """Register a font with Latin and CJK glyphs as KioskSans; Kivy's Roboto has no CJK."""
    for path in (preferred, *FONT_CANDIDATES):
        if path and os.path.exists(path):
            LabelBase.register(FONT, path)
            return path
    log.error("no CJK font found (install fonts-wqy-microhei): Chinese will not display")
    LabelBase.register(FONT, "Roboto-Regular.ttf")   # keeps Latin text working
    return "Roboto"
