"""Identify: type the number on a big keypad, or insert the SIM."""

from __future__ import annotations

from kivy.metrics import dp
from kivy.uix.boxlayout import BoxLayout

from kiosk import events as ev
from kiosk.catalog import group_number
from kiosk.engine import Phase, State

from . import theme
from .base import KioskScreen
from .widgets import KButton, Keypad, Panel, label

MAX_DIGITS = 13


class IdentifyScreen(KioskScreen):
    def build(self) -> None:
        self.digits = ""
        body = BoxLayout(spacing=dp(28))
        left = BoxLayout(orientation="vertical", spacing=dp(12), size_hint_x=0.58)
        self.display_box = Panel(size_hint_y=None, height=dp(96), padding=(dp(16), 0))
        self.display = label("", theme.FS_HUGE, bold=True)
        self.display_box.add_widget(self.display)
        left.add_widget(self.display_box)
        self.hint = label("", theme.FS_SMALL, theme.MUTED)
        left.add_widget(self.hint)
        left.add_widget(Keypad(self._key))
        body.add_widget(left)
        right = Panel(orientation="vertical", padding=dp(20), spacing=dp(16), size_hint_x=0.42)
        self.sim_title = label("", theme.FS_TITLE, bold=True)
        self.sim_text = label("", theme.FS_BODY, theme.MUTED)
        right.add_widget(self.sim_title)
        right.add_widget(self.sim_text)
        right.add_widget(BoxLayout())
        self.ok = KButton(style="primary", action="number_ok", on_press=self._submit)
        self.ok.height = dp(110)
        right.add_widget(self.ok)
        body.add_widget(right)
        self.root.add_widget(body)

    def on_pre_enter(self, *args: object) -> None:
        self.digits = self.ctx.rt.state.typed
        self._show()

    def _key(self, key: str) -> None:
        if key == "del":
            self.digits = self.digits[:-1]
        elif key == "clear":
            self.digits = ""
        elif len(self.digits) < MAX_DIGITS:
            self.digits += key
        self.ctx.rt.touched()
        self._show()

    def _submit(self) -> None:
        self.ctx.post(ev.NumberEntered(self.digits))

    def _show(self) -> None:
        _ = self._
        self.display.text = group_number(self.digits) if self.digits else "09__ ___ ____"
        self.display.color = theme.TEXT if self.digits else theme.BORDER
        check = self.ctx.catalog.check_number(self.digits) if self.digits else None
        if check and check.operator:
            self.hint.text = _("Network: {name}").format(
                name=self.ctx.catalog.operator(check.operator).name)
        else:
            self.hint.text = _("Example: 0917 123 4567")
        self.ok.disabled = not self.digits
        self.ok.opacity = 1 if self.digits else 0.4

    def update(self, s: State) -> None:
        super().update(s)
        _ = self._
        self.title.text = _("Type your mobile number")
        if not s.device_ok("sim_reader"):
            # The reader is out of order: say nothing about inserting a card.
            self.sim_title.text = _("Type your number on the keypad")
            self.sim_text.text = _("Then touch Continue.")
        elif s.phase is Phase.LOOKUP:
            self.sim_title.text = _("Reading your SIM card…")
            self.sim_text.text = _("Please wait a moment. Do not remove the card.")
        else:
            self.sim_title.text = _("Or insert your SIM card")
            self.sim_text.text = _(
                "Put the SIM card (in its card holder) into the reader below the screen. "
                "We will find your number.")
        self.ok.text = _("Continue ▶")
        self.back_cancel(back=False)
        self._show()
