"""Choosing how to pay, then paying: banknotes, wallet QR code or bank card."""

from __future__ import annotations

import time

from kivy.metrics import dp
from kivy.uix.boxlayout import BoxLayout

from kiosk import events as ev
from kiosk.catalog import mask_number
from kiosk.engine import State
from kiosk.i18n import N_

from . import theme
from .base import KioskScreen
from .widgets import Dialog, Panel, QrCode, Tile, label


def summary(screen: KioskScreen, s: State) -> str:
    ctx = screen.ctx
    p = ctx.catalog.product(s.txn.product_id)
    return screen._("{product} for {number}").format(
        product=p.label(ctx.tr.lang), number=mask_number(s.txn.msisdn))


class PaymentScreen(KioskScreen):
    METHODS = (
        ("cash", N_("Banknotes"), N_("Insert notes in the note reader")),
        ("qr", N_("QR Ph"), N_("Scan with GCash, Maya or your bank's app")),
        ("card", N_("Bank card"), N_("Tap or insert your card in the terminal")),
        ("voucher", N_("Voucher"), N_("A voucher code from an earlier receipt")),
    )

    # A payment that did not go through: said big, with what to do next.
    FAILED = ("card.declined", "card.aborted", "card.timeout", "card.offline",
              "qr.declined", "qr.expired")

    def build(self) -> None:
        self.banner = label("", theme.FS_TITLE, theme.DANGER, bold=True)
        self.root.add_widget(self.banner)
        self.what = label("", theme.FS_BODY, theme.MUTED)
        self.amount = label("", theme.FS_HUGE, theme.PRIMARY, bold=True)
        self.root.add_widget(self.what)
        self.root.add_widget(self.amount)
        self.tiles = BoxLayout(spacing=dp(20),
                               orientation="vertical" if theme.PORTRAIT else "horizontal")
        self.root.add_widget(self.tiles)
        self.change_note = label("", theme.FS_BODY, theme.MUTED)
        self.root.add_widget(self.change_note)

    def update(self, s: State) -> None:
        super().update(s)
        _ = self._
        self.title.text = _("How would you like to pay?")
        if s.notice in self.FAILED:
            self.banner.text = self.ctx.tr.notice(s.notice) + "\n" + _(
                "Try again, or choose another way to pay.")
            self.notice.text = ""
        else:
            self.banner.text = ""
        self.what.text = summary(self, s)
        self.amount.text = self.ctx.money(s.txn.amount)
        self.tiles.clear_widgets()
        for method, name, hint in self.METHODS:
            if method not in s.methods:
                continue
            tile = Tile(on_press=lambda m=method: self.ctx.post(ev.ChoosePayment(m)),
                        action=f"pay_{method}")
            tile.add_widget(label(_(name), theme.FS_TITLE, theme.PRIMARY, bold=True))
            tile.add_widget(label(_(hint), theme.FS_BODY, theme.MUTED))
            self.tiles.add_widget(tile)
        if not s.can_sell:
            self.tiles.add_widget(label(_("Top-up is temporarily unavailable. Nothing was charged."),
                                        theme.FS_TITLE, theme.DANGER))
        min_note = min(self.ctx.settings.cash_denominations)
        self.change_note.text = _(
            "Banknotes: this kiosk gives no coins. Change is given as a voucher "
            "for your next top-up.") if "cash" in s.methods and s.txn.amount % min_note else ""
        if s.can_sell and "cash" not in s.methods:
            self.change_note.text = _("Notes cannot be taken now.")
        self.back_cancel()


class CashScreen(KioskScreen):
    def build(self) -> None:
        self.what = label("", theme.FS_BODY, theme.MUTED)
        self.root.add_widget(self.what)
        row = BoxLayout(spacing=dp(20), size_hint_y=None, height=dp(200))
        self.paid_box = Panel(orientation="vertical", padding=dp(16))
        self.due_box = Panel(orientation="vertical", padding=dp(16))
        self.paid_caption = label("", theme.FS_BODY, theme.MUTED)
        self.paid = label("", theme.FS_HUGE, bold=True)
        self.due_caption = label("", theme.FS_BODY, theme.MUTED)
        self.due = label("", theme.FS_HUGE, theme.PRIMARY, bold=True)
        self.paid_box.add_widget(self.paid_caption)
        self.paid_box.add_widget(self.paid)
        self.due_box.add_widget(self.due_caption)
        self.due_box.add_widget(self.due)
        row.add_widget(self.paid_box)
        row.add_widget(self.due_box)
        self.root.add_widget(row)
        self.accepted = label("", theme.FS_BODY)
        self.root.add_widget(self.accepted)
        self.status = label("", theme.FS_BODY, theme.MUTED)
        self.root.add_widget(self.status)
        self.root.add_widget(BoxLayout())

    def update(self, s: State) -> None:
        super().update(s)
        _ = self._
        self.title.text = _("Insert your banknotes")
        self.what.text = summary(self, s) + " · " + self.ctx.money(s.txn.amount)
        self.paid_caption.text = _("Inserted so far")
        self.paid.text = self.ctx.money(s.txn.paid)
        self.due_caption.text = _("Still to pay")
        self.due.text = self.ctx.money(s.txn.remaining)
        # Only the notes the kiosk takes now (a larger one would be given back).
        fits = self.ctx.rt.engine.note_fits
        notes = ", ".join(self.ctx.money(v) for v in self.ctx.settings.cash_denominations
                          if fits(s.txn, v))
        self.accepted.text = _("Notes you can insert now: {notes}").format(notes=notes) \
            if notes and s.txn.remaining > 0 else ""
        if s.escrow:
            self.status.text = _("Checking your note of {amount}…").format(
                amount=self.ctx.money(s.escrow))
        elif s.txn.cancel_requested:
            self.status.text = _("Cancelling…")
        elif not s.device_ok("cash"):
            self.status.text = _("Notes cannot be taken now.")
            if s.txn.paid:
                self.status.text += "\n" + _(
                    "What you inserted is kept for you: cancel to get a voucher for it.")
        elif s.txn.ref is None:
            self.status.text = _("Getting the note reader ready…")
        else:
            self.status.text = _("Insert one note at a time, face up.")
            min_note = min(self.ctx.settings.cash_denominations)
            if s.txn.amount % min_note or 0 < s.txn.remaining < min_note:
                # Said before the first note, not only near the end.
                self.status.text += "\n" + _(
                    "This kiosk gives no coins: any change is given as a voucher.")
        self.set_footer([(_("✕ Cancel"), "danger", "cancel", self._cancel)])

    def _cancel(self) -> None:
        s = self.ctx.rt.state
        if not s.txn.paid:
            self.ctx.post(ev.Cancel())
            return
        _ = self._
        amount = self.ctx.money(s.txn.paid)
        Dialog(
            _("Cancel this top-up?"),
            _("You have inserted {amount}. Notes cannot be given back once accepted. "
              "If you cancel, you get a voucher for {amount}, printed on your receipt, "
              "to use at any of our kiosks.").format(amount=amount),
            [(_("Keep paying"), "neutral", "keep_paying", lambda: None),
             (_("Cancel, give me a voucher"), "danger", "confirm_cancel",
              lambda: self.ctx.post(ev.Cancel()))],
        ).open()


class QrScreen(KioskScreen):
    def build(self) -> None:
        portrait = theme.PORTRAIT
        body = BoxLayout(spacing=dp(28), orientation="vertical" if portrait else "horizontal")
        self.qr = QrCode(size_hint_x=1 if portrait else 0.55,
                         size_hint_y=0.55 if portrait else 1)
        body.add_widget(self.qr)
        right = BoxLayout(orientation="vertical", spacing=dp(12))
        self.what = label("", theme.FS_BODY, theme.MUTED)
        self.amount = label("", theme.FS_HUGE, theme.PRIMARY, bold=True)
        self.steps = label("", theme.FS_BODY, halign="left")
        self.countdown = label("", theme.FS_TITLE, bold=True)
        for w in (self.what, self.amount, self.steps, BoxLayout(), self.countdown):
            right.add_widget(w)
        body.add_widget(right)
        self.root.add_widget(body)

    def update(self, s: State) -> None:
        super().update(s)
        _ = self._
        self.title.text = _("Scan this QR Ph code to pay")
        self.what.text = summary(self, s)
        self.amount.text = self.ctx.money(s.txn.amount)
        self.qr.set(s.qr_payload)
        if s.qr_payload:
            self.steps.text = _("1. Open GCash, Maya or your bank's app\n"
                                "2. Choose Scan / Pay QR\n3. Check the amount and pay")
        else:
            self.steps.text = _("Preparing your QR code…")
        self.tick()
        self.back_cancel()

    def tick(self) -> None:
        s = self.ctx.rt.state
        if s.qr_expires_at:
            left = max(0, int(s.qr_expires_at - time.time()))
            self.countdown.text = self._("Time left: {m}:{s:02d}").format(m=left // 60,
                                                                           s=left % 60)
        else:
            self.countdown.text = ""


# What a ZVT terminal says while it works (drivers/card_terminal/zvt.py INTERMEDIATE_TEXTS),
# listed here so that they are translated; a text not listed is shown as the terminal sent it.
TERMINAL_TEXTS = (
    N_('Approved'),
    N_('Cancelling the payment'),
    N_('Card data incorrect'),
    N_('Card detected'),
    N_('Card expired'),
    N_('Card not accepted'),
    N_('Card not readable'),
    N_('Card unknown'),
    N_('Choose the application on the terminal'),
    N_('Choose the language on the terminal'),
    N_('Declined'),
    N_('Incorrect PIN'),
    N_('Insert, tap or swipe your card'),
    N_('Invalid card'),
    N_('Limit not sufficient'),
    N_('Not accepted'),
    N_('Not enough credit'),
    N_('PIN tries exceeded'),
    N_('Payment not possible'),
    N_('Please confirm the amount'),
    N_('Please enter your PIN on the card terminal'),
    N_('Please remove your card'),
    N_('Please wait'),
    N_('Processing error'),
    N_('System malfunction'),
    N_('Waiting for the bank'),
    N_("please remove your card"),
)


class CardScreen(KioskScreen):
    def build(self) -> None:
        self.what = label("", theme.FS_BODY, theme.MUTED)
        self.amount = label("", theme.FS_HUGE, theme.PRIMARY, bold=True)
        self.steps = label("", theme.FS_TITLE)
        self.terminal = label("", theme.FS_TITLE, theme.PRIMARY, bold=True)
        for w in (self.what, self.amount, BoxLayout(), self.steps, self.terminal, BoxLayout()):
            self.root.add_widget(w)

    def update(self, s: State) -> None:
        super().update(s)
        _ = self._
        self.title.text = _("Pay by card")
        self.what.text = summary(self, s)
        self.amount.text = self.ctx.money(s.txn.amount)
        self.steps.text = (_("Cancelling… please follow the terminal.")
                           if s.txn.cancel_requested else
                           _("Tap, insert or swipe your card on the terminal below the "
                             "screen and follow its instructions."))
        # The terminal's own message, in the customer's language where it is a known one.
        text = " - ".join(_(part) for part in s.card_text.split(" - ")) if s.card_text else ""
        self.terminal.text = (_("The card terminal says:") + "\n" + text) if text else ""
        self.set_footer([(_("✕ Cancel"), "danger", "cancel",
                          lambda: self.ctx.post(ev.Cancel()))])
