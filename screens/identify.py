"""Identify: type the number on a big keypad, or insert the SIM."""

from __future__ import annotations

from kivy.metrics import dp
from kivy.uix.boxlayout import BoxLayout

from kiosk import events as ev
from kiosk.catalog import NumberError, group_number
from kiosk.engine import Phase, State

from . import theme
from .base import KioskScreen
from .widgets import KButton, Keypad, Panel, label

MAX_DIGITS = 12        # 0917 123 4567, or 63 917 123 4567


class IdentifyScreen(KioskScreen):
    KEEP = ("digits",)
    NOTICE_LINES = 2           # room kept for a notice: the keypad never moves

    def build(self) -> None:
        """Portrait: the number, the keypad, Continue, then the SIM card's way. Landscape:
        the keypad on the left, as tall as the screen allows; the number, Continue and
        the SIM card's way on the right."""
        self.digits = ""
        self.display_box = Panel(size_hint_y=None, height=max(dp(88), theme.FS_HUGE * 1.25),
                                 padding=(dp(16), 0))
        self.display = label("", theme.FS_HUGE, bold=True)
        self.display_box.add_widget(self.display)
        self.display_box.bind(width=lambda *_: self._fit_display())
        self.hint = label("", theme.FS_SMALL if theme.LARGE and not theme.PORTRAIT
                          else theme.FS_BODY, theme.MUTED)
        keypad = Keypad(self._key)
        sim = Panel(orientation="vertical", padding=dp(14), spacing=dp(6), size_hint_y=None)
        sim.bind(minimum_height=sim.setter("height"))
        self.sim_title = label("", theme.FS_BODY, bold=True)
        self.sim_text = label("", theme.FS_SMALL, theme.MUTED)
        sim.add_widget(self.sim_title)
        # Large text on a landscape panel: the title says it all, the details would not fit.
        self.sim_details = not (theme.LARGE and not theme.PORTRAIT)
        if self.sim_details:
            sim.add_widget(self.sim_text)
        self.ok = KButton(style="primary", action="number_ok", on_press=self._submit)
        if theme.PORTRAIT:
            self.ok.height = dp(110)
            body = BoxLayout(orientation="vertical", spacing=dp(16))
            for w in (self.display_box, self.hint, keypad, self.ok, sim):
                body.add_widget(w)
        else:
            body = BoxLayout(spacing=dp(28))
            keypad.size_hint_x = 0.5
            body.add_widget(keypad)
            right = BoxLayout(orientation="vertical", spacing=dp(8), size_hint_x=0.5)
            for w in (self.display_box, self.hint, self.ok, BoxLayout(), sim):
                right.add_widget(w)
            body.add_widget(right)
        self.root.add_widget(body)

    def on_pre_enter(self, *args: object) -> None:
        if self.fresh_entry():
            self.digits = self.ctx.rt.state.typed
        self._show()

    def reset(self) -> None:
        self.digits = ""

    def key(self, key: str) -> None:
        """A digit, "del" or "clear" from the screen's keypad or a physical one."""
        self._key(key)

    def _key(self, key: str) -> None:
        if key == "del":
            self.digits = self.digits[:-1]
        elif key == "clear":
            self.digits = ""
        elif len(self.digits) < MAX_DIGITS:
            self.digits += key
        # An old error never contradicts the live hint: typing dismisses it, also when
        # the screen is drawn again from the state that still holds it.
        self.dismissed = self.ctx.rt.state.notice
        self.notice.text = ""
        self.ctx.rt.touched()
        self._show()

    def _submit(self) -> None:
        if not self.ok.disabled:
            self.ctx.post(ev.NumberEntered(self.digits))

    def _fit_display(self) -> None:
        """The number always fits its box: the font shrinks for a long number."""
        room = self.display_box.width - dp(32)
        chars = max(1, len(self.display.text))
        self.display.font_size = max(theme.FS_TITLE * 0.8, min(theme.FS_HUGE, room / (
            chars * 0.6)))

    def _show(self) -> None:
        _ = self._
        catalog = self.ctx.catalog
        self.display.text = group_number(self.digits) if self.digits else "09__ ___ ____"
        self.display.color = theme.TEXT if self.digits else theme.PLACEHOLDER
        self._fit_display()
        check = catalog.check_number(self.digits) if self.digits else None
        length = max((op.length for op in catalog.operators), default=11)
        self.hint.color = theme.MUTED
        if check is None:
            self.hint.text = _("Example: 0917 123 4567 ({n} digits)").format(n=length)
        elif check.error is None:
            self.hint.text = "✓ " + _("Network: {name}").format(
                name=catalog.operator(check.operator).name)
        elif check.error is NumberError.UNKNOWN_PREFIX:
            self.hint.color = theme.DANGER
            self.hint.text = _("No network uses numbers starting {digits}. "
                               "Please check the first digits.").format(
                digits=check.national[:4])
        elif check.error is NumberError.TOO_LONG:
            self.hint.color = theme.DANGER
            self.hint.text = _("Too many digits: a mobile number has {n} digits.").format(
                n=catalog.operator(check.operator).length if check.operator else length)
        else:
            need = catalog.operator(check.operator).length if check.operator else length
            left = max(0, need - len(check.national))
            self.hint.text = _("{typed} of {n} digits").format(
                typed=len(check.national), n=need)
            if check.operator:
                self.hint.text = _("Network: {name}").format(
                    name=catalog.operator(check.operator).name) + " · " + self.hint.text
            if left:
                self.hint.text += " · " + _("{n} more to type").format(n=left)
        ready = check is not None and check.error is None
        self.ok.disabled = not ready
        self.ok.opacity = 1 if ready else 0.4

    dismissed = ""

    def update(self, s: State) -> None:
        super().update(s)
        if s.notice != self.dismissed:
            self.dismissed = ""
        elif s.notice:
            self.notice.text = ""
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
