"""What every screen shares: the footer with Back/Cancel, the notice line, the context."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kivy.metrics import dp
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.screenmanager import Screen

from kiosk import events as ev
from kiosk.engine import State
from kiosk.money import display

from . import theme
from .widgets import KButton, label

if TYPE_CHECKING:
    from kiosk.i18n import Translator
    from kiosk.runtime import Runtime


@dataclass
class Context:
    rt: Runtime
    tr: Translator

    @property
    def settings(self) -> Any:
        return self.rt.settings

    @property
    def catalog(self) -> Any:
        return self.rt.settings.catalog

    def money(self, minor: int) -> str:
        return display(minor, self.catalog.currency)

    def post(self, e: ev.Record) -> None:
        self.rt.post(e)


class KioskScreen(Screen):
    """Subclasses build their content in `build` and fill texts in `update`."""

    NOTICE_LINES = 0           # > 0: that many lines are kept for the notice (no jumps)

    def __init__(self, ctx: Context, **kw: Any) -> None:
        super().__init__(**kw)
        self.ctx = ctx
        self.root = BoxLayout(orientation="vertical", padding=(dp(32), dp(20)), spacing=dp(14))
        self.add_widget(self.root)
        self.title = label("", theme.FS_TITLE, bold=True)
        self.root.add_widget(self.title)
        self.build()
        self.notice = label("", theme.FS_BODY, theme.DANGER, bold=True)
        if self.NOTICE_LINES:
            self.notice.min_height = theme.FS_BODY * 1.25 * self.NOTICE_LINES
        self.root.add_widget(self.notice)
        self.footer = BoxLayout(size_hint_y=None, height=theme.TOUCH, spacing=dp(16))
        self.root.add_widget(self.footer)

    def _(self, text: str) -> str:
        return self.ctx.tr(text)

    def build(self) -> None:
        pass

    def reset(self) -> None:
        """Forget what the last customer chose (called when the kiosk goes back to start)."""

    # What a screen holds that the engine does not (typed digits, the open tab): carried
    # over when the screens are built again (another panel size, large text, contrast).
    KEEP: tuple[str, ...] = ()

    def memory(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.KEEP}

    def restore(self, memory: dict[str, Any]) -> None:
        for name, value in memory.items():
            setattr(self, name, value)
        self.restored = bool(memory)

    restored = False

    def fresh_entry(self) -> bool:
        """True when the customer arrives (on_pre_enter), False when the screen was only
        built again with its memory (which must then be kept)."""
        was, self.restored = self.restored, False
        return not was

    def update(self, s: State) -> None:
        self.notice.text = self.ctx.tr.notice(s.notice)

    def set_footer(self, buttons: list[tuple[str, str, str, Callable[[], None]]]) -> None:
        self.footer.clear_widgets()
        for text, style, action, cb in buttons:
            self.footer.add_widget(KButton(text=text, style=style, action=action, on_press=cb))

    def back_cancel(self, back: bool = True, cancel: bool = True) -> None:
        btns = []
        if back:
            btns.append((self._("◀ Back"), "neutral", "back", lambda: self.ctx.post(ev.Back())))
        if cancel:
            btns.append((self._("✕ Cancel"), "danger", "cancel",
                         lambda: self.ctx.post(ev.Cancel())))
        self.set_footer(btns)

    def find(self, action: str) -> Any:
        """The button with this action name (for tests and the demo tour)."""
        for w in self.walk(restrict=True):
            if getattr(w, "action", None) == action:
                return w
        return None
