"""Attract: touch anywhere to start, or just insert the SIM."""

from __future__ import annotations

from typing import Any

from kivy.metrics import dp
from kivy.uix.boxlayout import BoxLayout

from kiosk import events as ev
from kiosk.engine import State
from kiosk.i18n import N_

from . import theme
from .base import KioskScreen
from .widgets import KButton, label


def advertised(_: Any, s: State) -> str:
    """How to pay, as far as this kiosk can take it now: a jammed acceptor or a cash box
    taken out is not advertised."""
    methods = [m for m in ("cash", "card", "qr") if m in s.methods]
    if len(methods) == 3:
        return str(_("Pay with banknotes, a bank card or a wallet QR code"))
    names = {"cash": N_("Banknotes"), "card": N_("Bank card"), "qr": N_("Wallet QR code")}
    text = _("Pay with: {methods}").format(methods=", ".join(_(names[m]) for m in methods)) \
        if methods else ""
    if "cash" not in methods and methods:
        text += "\n" + _("Notes cannot be taken now.")
    return str(text)


class AttractScreen(KioskScreen):
    def build(self) -> None:
        self.title.font_size = theme.FS_HUGE
        self.subtitle = label("", theme.FS_TITLE, theme.MUTED)
        self.root.add_widget(self.subtitle)
        self.root.add_widget(BoxLayout())
        self.start = KButton(style="primary", action="start",
                             on_press=lambda: self.ctx.post(ev.Start()))
        self.start.height = dp(120)
        self.start.font_size = theme.FS_TITLE
        self.root.add_widget(self.start)
        self.sim_hint = label("", theme.FS_BODY, theme.MUTED)
        self.root.add_widget(self.sim_hint)
        self.products = label("", theme.FS_BODY, theme.TEXT)
        self.root.add_widget(self.products)
        self.root.add_widget(BoxLayout())
        self.out_of_service = label("", theme.FS_TITLE, theme.DANGER, bold=True)
        self.root.add_widget(self.out_of_service)

    def on_touch_down(self, touch: Any) -> bool:
        if super().on_touch_down(touch):
            return True
        if self.collide_point(*touch.pos) and self.ctx.rt.state.can_sell:
            self.ctx.post(ev.Start())
            return True
        return False

    def update(self, s: State) -> None:
        super().update(s)
        _ = self._
        self.title.text = _("Top up your prepaid phone")
        self.subtitle.text = _("Load, data packs and keep-my-number packs for every network")
        self.start.text = _("Touch here to start")
        self.sim_hint.text = _("Or insert your SIM card in the reader to start")
        self.products.text = advertised(_, s)
        self.start.disabled = not s.can_sell
        self.start.opacity = 1 if s.can_sell else 0.3
        self.out_of_service.text = "" if s.can_sell else _(
            "Sorry, top-ups are temporarily unavailable at this kiosk.")
        if s.sim_present:
            # The last customer left the card behind (or the next one just put it in).
            self.out_of_service.text = "\n".join(filter(None, (
                _("A SIM card is in the reader. If it is not yours, please take it out "
                  "and give it to the staff."), self.out_of_service.text)))
        self.set_footer([])
