"""Colours, sizes and fonts. High contrast (text >= 7:1 on its background where possible),
touch targets >= 15 mm, text >= 4.8 mm tall on a 15-inch 1280x800 panel."""

from __future__ import annotations

import logging
import os

from kivy.core.text import LabelBase
from kivy.metrics import dp, sp

log = logging.getLogger("kiosk.ui")


def rgb(hex_: str, a: float = 1.0) -> tuple[float, float, float, float]:
    h = hex_.lstrip("#")
    return (int(h[0:2], 16) / 255, int(h[2:4], 16) / 255, int(h[4:6], 16) / 255, a)


BG = rgb("F3F5F9")
SURFACE = rgb("FFFFFF")
TEXT = rgb("111827")
MUTED = rgb("374151")
PRIMARY = rgb("0B4FC2")
PRIMARY_DOWN = rgb("083A8F")
ON_PRIMARY = rgb("FFFFFF")
SUCCESS = rgb("0F6B35")
DANGER = rgb("A61B1B")
WARN_BG = rgb("FFF4CE")
WARN_TEXT = rgb("5C3B00")
NEUTRAL = rgb("E2E6EE")
NEUTRAL_DOWN = rgb("C7CDD8")
BORDER = rgb("9AA3B2")
TOPBAR = rgb("0B2545")
PROMO = rgb("C2410C")
DEMO_BG = rgb("2B2B2B")
DEMO_ACCENT = rgb("FFD400")

FONT = "KioskSans"
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
)

# Sizes
TOUCH = dp(88)          # minimum button height (~23 mm at 96 dpi)
GAP = dp(16)
RADIUS = dp(14)
FS_SMALL = sp(22)
FS_BODY = sp(28)
FS_BUTTON = sp(30)
FS_TITLE = sp(42)
FS_HUGE = sp(60)


def register_fonts(preferred: str | None = None) -> str:
    """Register a font with Latin and CJK glyphs as KioskSans; Kivy's Roboto has no CJK."""
    for path in (preferred, *FONT_CANDIDATES):
        if path and os.path.exists(path):
            LabelBase.register(FONT, path)
            return path
    log.error("no CJK font found (install fonts-wqy-microhei): Chinese will not display")
    LabelBase.register(FONT, "Roboto-Regular.ttf")   # keeps Latin text working
    return "Roboto"
