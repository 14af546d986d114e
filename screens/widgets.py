"""The kiosk's widget kit: big buttons, tiles, keypad, QR code, dialogs."""

from __future__ import annotations

from typing import Any, Callable

import qrcode
from kivy.graphics import Color, Rectangle
from kivy.metrics import dp
from kivy.properties import ListProperty, NumericProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.label import Label
from kivy.uix.modalview import ModalView
from kivy.uix.widget import Widget

from . import theme


class KLabel(Label):
    pass


def label(text: str = "", size: float = theme.FS_BODY, color: Any = None, bold: bool = False,
          halign: str = "center", **kw: Any) -> KLabel:
    lbl = KLabel(text=text, font_size=size, bold=bold, halign=halign, **kw)
    if color is not None:
        lbl.color = color
    return lbl


class KButton(ButtonBehavior, Label):
    bg = ListProperty(list(theme.PRIMARY))
    bg_down = ListProperty(list(theme.PRIMARY_DOWN))
    fg = ListProperty(list(theme.ON_PRIMARY))
    outline = ListProperty([0, 0, 0, 0])
    action = StringProperty("")          # stable name for tests and logs

    STYLES = {
        "primary": (theme.PRIMARY, theme.PRIMARY_DOWN, theme.ON_PRIMARY, (0, 0, 0, 0)),
        "success": (theme.SUCCESS, theme.PRIMARY_DOWN, theme.ON_PRIMARY, (0, 0, 0, 0)),
        "danger": (theme.SURFACE, theme.NEUTRAL_DOWN, theme.DANGER, theme.DANGER),
        "neutral": (theme.NEUTRAL, theme.NEUTRAL_DOWN, theme.TEXT, theme.BORDER),
        "demo": (theme.rgb("444444"), theme.rgb("666666"), theme.rgb("FFFFFF"), (0, 0, 0, 0)),
        "demo_on": (theme.DEMO_ACCENT, theme.rgb("BBA000"), theme.rgb("111111"), (0, 0, 0, 0)),
    }

    def __init__(self, text: str = "", style: str = "primary",
                 on_press: Callable[[], None] | None = None, action: str = "",
                 **kw: Any) -> None:
        super().__init__(text=text, action=action, **kw)
        self.set_style(style)
        self._cb = on_press

    def set_style(self, style: str) -> None:
        bg, down, fg, outline = self.STYLES[style]
        self.bg, self.bg_down, self.fg, self.outline = list(bg), list(down), list(fg), list(outline)

    def on_release(self) -> None:
        if self._cb:
            self._cb()


class Panel(BoxLayout):
    bg = ListProperty(list(theme.SURFACE))
    radius = NumericProperty(theme.RADIUS)


class Tile(ButtonBehavior, BoxLayout):
    """A big touch card; its content is centred vertically between two spacers."""
    action = StringProperty("")

    def __init__(self, on_press: Callable[[], None], action: str = "", **kw: Any) -> None:
        super().__init__(action=action, **kw)
        self._cb = on_press
        super().add_widget(Widget())
        self._end = Widget()
        super().add_widget(self._end)

    def add_widget(self, widget: Any, *args: Any, **kw: Any) -> None:
        # Insert above the bottom spacer (Kivy's index 0 is the last child in a BoxLayout).
        super().add_widget(widget, index=1)

    def on_release(self) -> None:
        self._cb()


class Keypad(GridLayout):
    """Digits 1-9, delete, 0, and a key of the caller's choice."""

    def __init__(self, on_key: Callable[[str], None], **kw: Any) -> None:
        super().__init__(cols=3, spacing=dp(12), **kw)
        for key in ("1", "2", "3", "4", "5", "6", "7", "8", "9", "del", "0", "clear"):
            text = {"del": "←", "clear": "C"}.get(key, key)
            btn = KButton(text=text, style="neutral", action=f"key_{key}",
                          on_press=lambda k=key: on_key(k))
            btn.font_size = theme.FS_TITLE
            btn.size_hint_y = 1          # rows share the height the screen leaves
            if key in ("del", "clear"):
                btn.font_name = "Roboto" if key == "clear" else btn.font_name
            self.add_widget(btn)


class QrCode(Widget):
    """A QR code drawn module by module: crisp at any size, error correction M, 4-module
    quiet zone, on white."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.payload = ""
        self.matrix: list[list[bool]] = []
        self.bind(pos=self._draw, size=self._draw)

    def set(self, payload: str) -> None:
        if payload == self.payload:
            return
        self.payload = payload
        if payload:
            qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
            qr.add_data(payload)
            qr.make(fit=True)
            self.matrix = qr.get_matrix()
        else:
            self.matrix = []
        self._draw()

    def _draw(self, *_: Any) -> None:
        self.canvas.clear()
        if not self.matrix:
            return
        n = len(self.matrix)
        module = int(min(self.width, self.height) // n)
        if module < 1:
            return
        side = module * n
        x0 = int(self.center_x - side / 2)
        y0 = int(self.center_y - side / 2)
        with self.canvas:
            Color(1, 1, 1, 1)
            Rectangle(pos=(x0, y0), size=(side, side))
            Color(0, 0, 0, 1)
            for r, row in enumerate(self.matrix):
                for c, dark in enumerate(row):
                    if dark:
                        Rectangle(pos=(x0 + c * module, y0 + (n - 1 - r) * module),
                                  size=(module, module))


class Dialog(ModalView):
    """A modal question with big answers; answers are (text, style, action, callback)."""

    def __init__(self, title: str, body: str,
                 answers: list[tuple[str, str, str, Callable[[], None]]], **kw: Any) -> None:
        super().__init__(size_hint=(0.72, None), auto_dismiss=False,
                         background_color=(0, 0, 0, 0.55), **kw)
        box = Panel(orientation="vertical", padding=dp(28), spacing=dp(18))
        self.title_label = label(title, theme.FS_TITLE, bold=True)
        self.body_label = label(body, theme.FS_BODY, theme.MUTED)
        box.add_widget(self.title_label)
        box.add_widget(self.body_label)
        row = BoxLayout(spacing=dp(16), size_hint_y=None, height=theme.TOUCH)
        self.buttons: list[KButton] = []
        for text, style, action, cb in answers:
            b = KButton(text=text, style=style, action=action,
                        on_press=lambda cb=cb: (self.dismiss(), cb()))
            row.add_widget(b)
            self.buttons.append(b)
        box.add_widget(row)
        self.add_widget(box)
        box.bind(minimum_height=lambda *_: setattr(self, "height", box.minimum_height))
        box.size_hint_y = None
        box.bind(minimum_height=box.setter("height"))

    def dismiss(self, *args: Any, **kw: Any) -> None:
        kw.setdefault("animation", False)     # gone at once: no half-faded question
        super().dismiss(*args, **kw)

