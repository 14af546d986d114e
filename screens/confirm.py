"""Confirm: the number read back in big digits; never a silent typo."""

from __future__ import annotations

from kivy.metrics import dp
from kivy.uix.boxlayout import BoxLayout

from kiosk import events as ev
from kiosk.catalog import group_number, mask_number
from kiosk.engine import State

from . import theme
from .base import KioskScreen
from .widgets import KButton, Panel, label


class ConfirmScreen(KioskScreen):
    def build(self) -> None:
        self.root.add_widget(BoxLayout(size_hint_y=0.2))
        box = Panel(orientation="vertical", padding=dp(24), spacing=dp(10),
                    size_hint_y=None, height=dp(230))
        self.number = label("", sp_huge(), bold=True)
        self.operator = label("", theme.FS_TITLE, theme.MUTED)
        self.source = label("", theme.FS_SMALL, theme.MUTED)
        for w in (self.number, self.operator, self.source):
            box.add_widget(w)
        self.root.add_widget(box)
        self.root.add_widget(BoxLayout(size_hint_y=0.2))
        row = BoxLayout(size_hint_y=None, height=dp(110), spacing=dp(24))
        self.no = KButton(style="neutral", action="number_no",
                          on_press=lambda: self.ctx.post(ev.ConfirmNumber(False)))
        self.yes = KButton(style="success", action="number_yes",
                           on_press=lambda: self.ctx.post(ev.ConfirmNumber(True)))
        for b in (self.no, self.yes):
            b.height = dp(110)
            row.add_widget(b)
        self.root.add_widget(row)

    def update(self, s: State) -> None:
        super().update(s)
        _ = self._
        t = s.txn
        self.title.text = _("Is this your number?")
        if t.number_source == "sim":
            self.number.text = mask_number(t.msisdn)
            self.source.text = _("Found from your SIM card. The middle digits are hidden "
                                 "for your privacy.")
            self.no.text = _("No, type my number")
        else:
            self.number.text = group_number(t.msisdn)
            self.source.text = _("Please check every digit.")
            self.no.text = _("No, correct it")
        self.operator.text = self.ctx.catalog.operator(t.operator).name if t.operator else ""
        self.yes.text = _("Yes, this is my number")
        self.back_cancel(back=False)


def sp_huge() -> float:
    return theme.FS_HUGE * 1.15
