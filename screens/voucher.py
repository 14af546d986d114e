"""Paying with a voucher: the customer types its 16 digits on the keypad or holds its QR
code to the scanner (a scanner is a keyboard to the kiosk: digits, then Enter). Several
vouchers may be used; the rest can be paid in cash on the same reference."""

from __future__ import annotations

from typing import Any

from kivy.core.window import Window
from kivy.metrics import dp
from kivy.uix.boxlayout import BoxLayout

from kiosk import events as ev
from kiosk.engine import Phase, State
from kiosk.vouchers import LENGTH, pretty, well_formed

from . import theme
from .base import KioskScreen
from .payment import summary
from .widgets import KButton, Keypad, label


class VoucherScreen(KioskScreen):
    KEEP = ("digits",)
    def build(self) -> None:
        self.digits = ""
        self.what = label("", theme.FS_BODY, theme.MUTED)
        self.root.add_widget(self.what)
        self.due = label("", theme.FS_TITLE, theme.PRIMARY, bold=True)
        self.root.add_widget(self.due)
        row = BoxLayout(spacing=dp(20))
        left = BoxLayout(orientation="vertical", spacing=dp(8))
        self.hint = label("", theme.FS_BODY)
        self.code = label("", theme.FS_TITLE, bold=True)
        self.used = label("", theme.FS_SMALL, theme.MUTED)
        for w in (self.hint, self.code, self.used):
            left.add_widget(w)
        self.ok = KButton(text="", style="primary", action="voucher_ok", on_press=self._submit)
        self.rest_cash = KButton(text="", style="neutral", action="voucher_rest_cash",
                                 on_press=lambda: self.ctx.post(ev.ChoosePayment("cash")))
        left.add_widget(self.ok)
        left.add_widget(self.rest_cash)
        row.add_widget(left)
        row.add_widget(Keypad(self._key, size_hint_x=0.8))
        self.root.add_widget(row)
        self._bound = False

    def reset(self) -> None:
        self.digits = ""

    def on_pre_enter(self, *args: Any) -> None:
        if self.fresh_entry():
            self.digits = ""
        if not self._bound:
            Window.bind(on_textinput=self._scanned, on_key_down=self._enter_key)
            self._bound = True

    def on_leave(self, *args: Any) -> None:
        if self._bound:
            Window.unbind(on_textinput=self._scanned, on_key_down=self._enter_key)
            self._bound = False

    # ---- input
    def _key(self, key: str) -> None:
        if key == "del":
            self.digits = self.digits[:-1]
        elif key == "clear":
            self.digits = ""
        elif len(self.digits) < LENGTH:
            self.digits += key
        self.ctx.rt.touched()
        self.update(self.ctx.rt.state)

    def _scanned(self, _window: Any, text: str) -> None:
        """A barcode scanner types the code's digits (a QR code holds just the digits)."""
        for ch in text:
            if ch.isdigit() and len(self.digits) < LENGTH:
                self.digits += ch
        self.ctx.rt.touched()
        self.update(self.ctx.rt.state)

    def _enter_key(self, _window: Any, key: int, *_: Any) -> bool:
        if key in (13, 271):                       # Enter / keypad Enter: the scan is done
            self._submit()
            return True
        return False

    def _submit(self) -> None:
        if len(self.digits) == LENGTH:
            code, self.digits = self.digits, ""
            self.ctx.post(ev.VoucherEntered(code))

    # ---- drawing
    def update(self, s: State) -> None:
        super().update(s)
        if s.phase is not Phase.PAY_VOUCHER:
            return
        _ = self._
        t = s.txn
        self.title.text = _("Pay with a voucher")
        self.what.text = summary(self, s) + " · " + self.ctx.money(t.amount)
        self.due.text = _("Still to pay: {amount}").format(amount=self.ctx.money(t.remaining))
        self.hint.text = _("Type the 16 digits of your voucher, or hold its QR code to the "
                           "scanner.")
        shown = self.digits + "_" * (LENGTH - len(self.digits))
        self.code.text = pretty(shown)
        complete = len(self.digits) == LENGTH
        self.code.color = (theme.DANGER if complete and not well_formed(self.digits)
                           else theme.TEXT)
        if complete and not well_formed(self.digits):
            self.notice.text = self.ctx.tr.notice("voucher.invalid")
        self.used.text = "\n".join(
            _("Voucher …{end}: {amount}").format(end=code[-4:], amount=self.ctx.money(a))
            for code, a in t.vouchers_in)
        self.ok.text = _("Use this voucher")
        self.ok.disabled = not complete or t.ref is None
        self.ok.opacity = 1 if not self.ok.disabled else 0.4
        self.rest_cash.text = _("Pay the rest with cash")
        can_cash = bool(t.paid) and t.remaining > 0 and "cash" in s.methods
        self.rest_cash.disabled = not can_cash
        self.rest_cash.opacity = 1 if can_cash else 0
        self.back_cancel(back=not t.paid)
