"""Window settings that Kivy reads once, when the window is created. Call `configure`
before importing anything else from `screens` (sizes in dp create the window)."""

from __future__ import annotations

import os

from kiosk.config import Settings


def configure(settings: Settings, windowed: bool) -> None:
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    from kivy.config import Config
    ui = settings.ui
    # Kiosk defaults: no Escape-to-quit, no multitouch emulation dots on right-click.
    Config.set("kivy", "exit_on_escape", "0")
    Config.set("input", "mouse", "mouse,disable_multitouch")
    Config.set("graphics", "resizable", "1")
    Config.set("graphics", "width", str(ui.width))
    Config.set("graphics", "height", str(ui.height))
    Config.set("graphics", "fullscreen", "0" if windowed or not ui.fullscreen else "auto")
