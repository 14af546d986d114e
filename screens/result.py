"""Result (what happened to the money, in plain words) and the receipt."""

from __future__ import annotations

from kivy.metrics import dp, sp
from kivy.uix.boxlayout import BoxLayout

from kiosk import events as ev
from kiosk.catalog import mask_number
from kiosk.engine import Outcome, State
from kiosk.i18n import N_
from kiosk.receipts import TRANSLATED_VALUES
from kiosk.vouchers import pretty

from . import theme
from .base import KioskScreen
from .widgets import KButton, Panel, QrCode, label


class ResultScreen(KioskScreen):
    def build(self) -> None:
        self.headline = label("", theme.FS_HUGE * 0.85, bold=True)
        self.root.add_widget(self.headline)
        self.details = label("", theme.FS_BODY)
        self.root.add_widget(self.details)
        self.voucher_box = Panel(orientation="horizontal", padding=dp(12), spacing=dp(12),
                                 size_hint_y=None, height=dp(190), bg=list(theme.WARN_BG))
        text = BoxLayout(orientation="vertical", spacing=dp(6))
        self.voucher_title = label("", theme.FS_BODY, theme.WARN_TEXT, bold=True)
        self.voucher_code = label("", theme.FS_HUGE * 0.8, theme.WARN_TEXT, bold=True)
        self.voucher_hint = label("", theme.FS_SMALL, theme.WARN_TEXT)
        for w in (self.voucher_title, self.voucher_code, self.voucher_hint):
            text.add_widget(w)
        self.voucher_box.add_widget(text)
        # The voucher as a QR code: the kiosk's scanner reads it back when it is used.
        self.voucher_qr = QrCode(size_hint_x=None, width=dp(166))
        self.voucher_box.add_widget(self.voucher_qr)
        self.root.add_widget(self.voucher_box)
        self.take = label("", theme.FS_TITLE, theme.TEXT, bold=True)
        self.root.add_widget(self.take)
        self.root.add_widget(BoxLayout())

    def update(self, s: State) -> None:
        super().update(s)
        _ = self._
        t = s.txn
        money = self.ctx.money
        number = mask_number(t.msisdn)
        p = self.ctx.catalog.product(t.product_id) if t.product_id else None
        product = p.label(self.ctx.tr.lang) if p else ""
        self.title.text = ""
        reason = self.ctx.tr.notice(t.failure) if t.failure not in ("", "change") else ""
        if t.outcome is Outcome.SUCCESS:
            self.headline.text = "✓ " + _("Done! Your top-up was sent")
            self.headline.color = theme.SUCCESS
            self.details.text = _("{product} {amount} to {number}.").format(
                product=product, amount=money(t.amount), number=number)
            if t.operator_ref:
                self.details.text += "\n" + _("Operator reference: {ref}").format(
                    ref=t.operator_ref)
            if s.balance_after is not None and t.number_source == "sim":
                from .product import balance_text
                self.details.text += "\n" + balance_text(self.ctx, s.balance_after,
                                                          N_("New balance: {amount}"))
        elif t.outcome is Outcome.PENDING:
            self.headline.text = _("Your top-up is being processed")
            self.headline.color = theme.WARN_TEXT
            self.details.text = _("The network has not confirmed it yet. It usually arrives "
                                  "within minutes. Keep your receipt: reference {ref}.").format(
                ref=t.ref)
        elif t.outcome is Outcome.FAILED_REFUNDED or (
                t.outcome is Outcome.CANCELLED and t.refunded):
            self.headline.text = _("Your number was not topped up")
            self.headline.color = theme.DANGER
            self.details.text = (reason + "\n" if reason else "") + _(
                "Your card payment of {amount} was reversed: nothing was charged.").format(
                amount=money(t.refunded))
        elif t.outcome is Outcome.CANCELLED and t.failure in ("", "cancelled"):
            self.headline.text = _("Cancelled")
            self.headline.color = theme.TEXT
            self.details.text = _("Your number was not topped up.")
        else:
            self.headline.text = _("Your number was not topped up")
            self.headline.color = theme.DANGER
            self.details.text = (reason + "\n" if reason else "") + _(
                "Your money is safe: it is kept for you as a voucher.")
        if t.voucher_code:
            self.voucher_box.opacity = 1
            amount = t.voucher or (t.paid - t.credited)
            if t.voucher_held:
                self.voucher_title.text = _("Voucher {amount}, valid only if this top-up "
                                            "fails").format(amount=money(amount))
            elif t.credited:
                self.voucher_title.text = _("Your change: a voucher for {amount}").format(
                    amount=money(amount))
            else:
                self.voucher_title.text = _("Your voucher for {amount}").format(
                    amount=money(amount))
            self.voucher_code.text = pretty(t.voucher_code)
            self.voucher_qr.set("" if t.voucher_held else t.voucher_code)
            self.voucher_hint.text = _(
                "Use it to pay at any of our kiosks. Help: {support}").format(
                support=self.ctx.settings.support_in(self.ctx.tr.lang))
        else:
            self.voucher_box.opacity = 0
            self.voucher_title.text = self.voucher_code.text = self.voucher_hint.text = ""
            self.voucher_qr.set("")
        take = []
        if t.paid:
            if s.receipt_printed is False:
                take.append(_('The printer is not working: tap "Show receipt" and take '
                              "a photo of it."))
            else:
                take.append(_("Please take your receipt."))
        if s.sim_present:
            take.append(_("Do not forget your SIM card!"))
        self.take.text = "\n".join(take)
        buttons = []
        if t.paid and t.ref:
            buttons.append((_("Show receipt"), "neutral", "show_receipt",
                            lambda: self.ctx.post(ev.ShowReceipt())))
        buttons.append((_("Finish"), "primary", "finish", lambda: self.ctx.post(ev.Done())))
        self.set_footer(buttons)


class ReceiptScreen(KioskScreen):
    def build(self) -> None:
        body = BoxLayout(spacing=dp(24))
        paper = Panel(orientation="vertical", padding=(dp(18), dp(10)), spacing=dp(2),
                      size_hint_x=0.62)
        self.rows = paper
        body.add_widget(paper)
        right = BoxLayout(orientation="vertical", spacing=dp(12), size_hint_x=0.38)
        self.qr = QrCode()
        self.qr_caption = label("", theme.FS_SMALL, theme.MUTED)
        self.printed = label("", theme.FS_BODY, bold=True)
        right.add_widget(self.qr)
        right.add_widget(self.qr_caption)
        right.add_widget(self.printed)
        body.add_widget(right)
        self.root.add_widget(body)

    def update(self, s: State) -> None:
        super().update(s)
        _ = self._
        self.title.text = _("Your receipt")
        r = self.ctx.rt.receipt
        self.rows.clear_widgets()
        t = s.txn
        for key, value in (r.facts if r else []):
            if not value:
                continue
            if key == "Product" and t.product_id:
                try:
                    value = self.ctx.catalog.product(t.product_id).label(self.ctx.tr.lang)
                except KeyError:
                    pass
            row = BoxLayout(spacing=dp(10), size_hint_y=None)
            name = label(_(key), sp(18), theme.MUTED, halign="left", size_hint_x=0.4)
            if key in TRANSLATED_VALUES:
                value = _(value)
            text = label(value, sp(18), bold=key in ("Status", "Voucher"), halign="left")
            for w in (name, text):
                row.add_widget(w)
                # A row is as tall as its longer side (a long name wraps to two lines).
                w.bind(height=lambda *_, r=row, a=name, b=text: setattr(
                    r, "height", max(a.height, b.height)))
            row.height = max(name.height, text.height)
            self.rows.add_widget(row)
        self.rows.add_widget(BoxLayout())       # the rows at the top of the paper
        self.qr.set(r.qr if r else "")
        # Say what the code is: the voucher itself, or the reference the staff look up.
        if r and t.voucher_code and r.qr == t.voucher_code:
            self.qr_caption.text = _("This QR code is your voucher: hold it to the kiosk's "
                                     "scanner when you pay with it.")
        else:
            self.qr_caption.text = _("This QR code holds your reference {ref}. Show it to "
                                     "the staff or our hotline to check this top-up.").format(
                ref=t.ref or "")
        if s.receipt_printed:
            self.printed.text = _("A printed copy is in the slot below the screen.")
        elif s.receipt_printed is False:
            self.printed.text = _("The printer is not working. Please take a photo of "
                                  "this screen.")
        else:
            self.printed.text = _("Printing…")
        self.set_footer([(_("◀ Back"), "neutral", "back", lambda: self.ctx.post(ev.Back())),
                         (_("Finish"), "primary", "finish", lambda: self.ctx.post(ev.Done()))])
