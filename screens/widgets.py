"""The kiosk's widget kit: big buttons, tiles, keypad, QR code, dialogs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import qrcode
from kivy.core.text import Label as CoreLabel
from kivy.graphics import Color, Rectangle
from kivy.graphics.texture import Texture
from kivy.metrics import dp
from kivy.properties import ListProperty, NumericProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.label import Label
from kivy.uix.modalview import ModalView
from kivy.uix.widget import Widget

from kiosk.linebreak import needs_wrap, strip_marks, wrap

from . import theme


class CjkWrap:
    """Chinese wraps at word boundaries (kiosk/linebreak.py), not wherever a line fills
    up: the text is broken into lines here, by the label's own font, whenever the text,
    the width or the font changes. Latin text is left to Kivy."""

    def _cjk_setup(self) -> None:
        self._source = ""
        self._shown = ""
        self.fbind("text", self._cjk_text)
        for prop in ("width", "font_size", "font_name", "bold"):
            self.fbind(prop, self._cjk_rewrap)

    def _cjk_text(self, *_: Any) -> None:
        text = self.text   # type: ignore[attr-defined]
        if text == self._shown:
            return
        self._source = text
        self._cjk_rewrap()

    def _cjk_rewrap(self, *_: Any) -> None:
        src = self._source
        if not src or not needs_wrap(src):
            self._shown = src
            return
        room = self.text_size[0] or self.width   # type: ignore[attr-defined]
        if room <= 1:
            shown = strip_marks(src)
        else:
            shown = "\n".join(wrap(src, room - dp(2), self._measure()))
        self._shown = shown
        if shown != self.text:   # type: ignore[attr-defined]
            self.text = shown   # type: ignore[attr-defined]

    def _measure(self) -> Callable[[str], float]:
        core = CoreLabel(font_name=self.font_name, font_size=self.font_size,   # type: ignore
                         bold=self.bold)   # type: ignore[attr-defined]
        return lambda s: float(core.get_extents(s)[0])


class KLabel(CjkWrap, Label):
    min_height = NumericProperty(0)     # room kept even when the text is shorter

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._cjk_setup()
        self._cjk_text()


def label(text: str = "", size: float | None = None, color: Any = None, bold: bool = False,
          halign: str = "center", **kw: Any) -> KLabel:
    lbl = KLabel(text=text, font_size=size or theme.FS_BODY, bold=bold, halign=halign, **kw)
    if color is not None:
        lbl.color = color
    return lbl


class KButton(CjkWrap, ButtonBehavior, Label):
    bg = ListProperty(list(theme.PRIMARY))
    bg_down = ListProperty(list(theme.PRIMARY_DOWN))
    fg = ListProperty(list(theme.ON_PRIMARY))
    outline = ListProperty([0, 0, 0, 0])
    action = StringProperty("")          # stable name for tests and logs

    @staticmethod
    def styles() -> dict[str, tuple[Any, Any, Any, Any]]:
        """The button styles in the current palette (high contrast swaps it)."""
        t = theme
        return {
            "primary": (t.PRIMARY, t.PRIMARY_DOWN, t.ON_PRIMARY, (0, 0, 0, 0)),
            "success": (t.SUCCESS, t.PRIMARY_DOWN, t.ON_PRIMARY if not t.CONTRAST
                        else t.rgb("000000"), (0, 0, 0, 0)),
            "danger": (t.SURFACE, t.NEUTRAL_DOWN, t.DANGER, t.DANGER),
            "neutral": (t.NEUTRAL, t.NEUTRAL_DOWN, t.TEXT, t.BORDER),
            "demo": (t.rgb("444444"), t.rgb("666666"), t.rgb("FFFFFF"), (0, 0, 0, 0)),
            "demo_on": (t.DEMO_ACCENT, t.rgb("BBA000"), t.rgb("111111"), (0, 0, 0, 0)),
        }

    def __init__(self, text: str = "", style: str = "primary",
                 on_press: Callable[[], None] | None = None, action: str = "",
                 **kw: Any) -> None:
        super().__init__(text=text, action=action, **kw)
        self.set_style(style)
        self._cb = on_press
        self._cjk_setup()
        self._cjk_text()
        self._font = self.font_size       # as designed; shrunk only to fit
        self._shrinking = False
        self.fbind("texture_size", self._shrink_to_fit)
        self.fbind("text", self._regrow)
        self.fbind("size", self._regrow)

    def _set_font(self, size: float) -> None:
        self._shrinking = True
        self.font_size = size
        self._shrinking = False

    def _regrow(self, *_: Any) -> None:
        """A new text or size starts again from the designed font size."""
        if self.font_size != self._font:
            self._set_font(self._font)

    def _shrink_to_fit(self, *_: Any) -> None:
        """A long translation is made smaller (down to 60 %) rather than spill out of
        its button."""
        if self.texture_size[1] > self.height - dp(6) and self.font_size > 0.6 * self._font:
            self._set_font(max(0.6 * self._font, self.font_size * 0.9))

    def on_font_size(self, _w: Any, size: float) -> None:
        if not getattr(self, "_shrinking", True):
            self._font = size              # set by the screen: the new designed size

    def set_style(self, style: str) -> None:
        bg, down, fg, outline = self.styles()[style]
        self.bg, self.bg_down, self.fg, self.outline = list(bg), list(down), list(fg), list(outline)

    def on_release(self) -> None:
        if self._cb:
            self._cb()


class Panel(BoxLayout):
    bg = ListProperty([1, 1, 1, 1])
    radius = NumericProperty(0)

    def __init__(self, **kw: Any) -> None:
        kw.setdefault("bg", list(theme.SURFACE))
        kw.setdefault("radius", theme.RADIUS)
        super().__init__(**kw)


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
    """A QR code: error correction M, 4-module quiet zone, on white, drawn as one texture
    of one pixel per module scaled up by a whole number with the nearest filter (crisp at
    any size). One texture and one rectangle instead of a rectangle per dark module: the
    payment QR was 1,652 canvas instructions, each with its own buffer in the GL driver."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.payload = ""
        self.matrix: list[list[bool]] = []
        self.texture: Texture | None = None
        self.bind(pos=self._draw, size=self._draw)

    def set(self, payload: str) -> None:
        if payload == self.payload:
            return
        self.payload = payload
        self.texture = None
        if payload:
            qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
            qr.add_data(payload)
            qr.make(fit=True)
            self.matrix = qr.get_matrix()
            self.texture = self._texture(self.matrix)
        else:
            self.matrix = []
        self._draw()

    @staticmethod
    def _texture(matrix: list[list[bool]]) -> Texture:
        n = len(matrix)
        rows = bytearray()
        for row in reversed(matrix):               # GL's first row is the bottom one
            for dark in row:
                rows += b"\x00\x00\x00\xff" if dark else b"\xff\xff\xff\xff"
        tex = Texture.create(size=(n, n), colorfmt="rgba")
        tex.mag_filter = tex.min_filter = "nearest"
        tex.blit_buffer(bytes(rows), colorfmt="rgba", bufferfmt="ubyte")
        return tex

    def _draw(self, *_: Any) -> None:
        self.canvas.clear()
        if not self.matrix or self.texture is None:
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
            Rectangle(pos=(x0, y0), size=(side, side), texture=self.texture)


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

