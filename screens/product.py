"""Product: tabs by kind (load, data, packs, keep my number), large tiles with price and
what the customer gets; a RANGE product opens an amount keypad."""

from __future__ import annotations

from datetime import date
from typing import Any

from kivy.metrics import dp
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.modalview import ModalView

from kiosk import events as ev
from kiosk.catalog import Product, ProductKind, mask_number
from kiosk.engine import State
from kiosk.i18n import N_, format_date
from kiosk.money import exponent

from . import theme
from .base import KioskScreen
from .widgets import Dialog, KButton, Keypad, Panel, Tile, label

TABS = (
    (ProductKind.AIRTIME, N_("Load")),
    (ProductKind.DATA, N_("Data")),
    (ProductKind.BUNDLE, N_("Monthly & quarterly")),
    (ProductKind.VALIDITY, N_("Keep my number")),
)


class ProductScreen(KioskScreen):
    KEEP = ("kind", "_operator")
    def build(self) -> None:
        self.kind = ProductKind.AIRTIME
        row = BoxLayout(size_hint_y=None, spacing=dp(12))
        self.for_number = label("", theme.FS_BODY, theme.MUTED)
        # A ported number keeps its old prefix: the customer sees the network and can
        # correct it before paying (the provider's detection is the first answer).
        self.network = KButton(style="neutral", action="change_network",
                               on_press=self._ask_network, size_hint_x=None,
                               width=dp(250))
        self.network.height = dp(64)
        self.network.font_size = theme.FS_SMALL
        row.add_widget(self.for_number)
        row.add_widget(self.network)
        row.bind(minimum_height=row.setter("height"))
        self.for_number.bind(height=lambda *_: setattr(
            row, "height", max(self.for_number.height, self.network.height)))
        self.root.add_widget(row)
        self.tabs = BoxLayout(size_hint_y=None, height=dp(80), spacing=dp(12))
        self.root.add_widget(self.tabs)
        self.grid = GridLayout(cols=3, spacing=dp(16), row_force_default=True)
        self.grid.bind(size=self._fit_rows)
        self.root.add_widget(self.grid)
        self._row_height = dp(118)
        self._operator = ""

    def today(self) -> date:
        return date.today()

    def offers(self) -> list[Product]:
        """What the catalog has for the number's network and the provider sells it now."""
        s = self.ctx.rt.state
        sold = s.offered or ()
        return [p for p in self.ctx.catalog.offers(s.txn.operator, self.today()) if p.id in sold]

    def reset(self) -> None:
        self.kind = ProductKind.AIRTIME

    def on_pre_enter(self, *args: Any) -> None:
        # Another number (maybe another network) starts on the first tab.
        op = self.ctx.rt.state.txn.msisdn
        if op != self._operator:
            self._operator = op
            self.kind = ProductKind.AIRTIME

    def update(self, s: State) -> None:
        super().update(s)
        _ = self._
        self.title.text = _("What would you like to buy?")
        op = self.ctx.catalog.operator(s.txn.operator).name if s.txn.operator else ""
        self.for_number.text = _("For {number} ({network})").format(
            number=mask_number(s.txn.msisdn), network=op)
        self.network.text = _("Not {network}?").format(network=op) if op else ""
        self.network.disabled = s.offered is None
        # The balance is personal: shown only to whoever holds the SIM. A typed number
        # proves nothing (anyone can type anyone's number), so it gets no balance.
        if s.balance is not None and s.txn.number_source == "sim":
            self.for_number.text += "\n" + balance_text(self.ctx, s.balance, today=self.today())
        offers = self.offers()
        kinds = [k for k, _t in TABS if any(p.kind is k for p in offers)]
        if self.kind not in kinds and kinds:
            self.kind = kinds[0]
        self.tabs.clear_widgets()
        for k, text in TABS:
            if k in kinds:
                self.tabs.add_widget(KButton(
                    text=_(text), style="primary" if k is self.kind else "neutral",
                    action=f"tab_{k.value}", height=dp(80),
                    on_press=lambda k=k: self._tab(k)))
        self.grid.clear_widgets()
        if s.offered is None:
            self.grid.add_widget(label(_("One moment: checking what your number can get."),
                                       theme.FS_TITLE, theme.MUTED))
        self._row_height = dp(118) if self.kind is ProductKind.AIRTIME else dp(236)
        self.grid.cols = 2 if theme.PORTRAIT and self.kind is not ProductKind.AIRTIME else 3
        for p in offers:
            if p.kind is not self.kind:
                continue
            if p.is_range:
                self.grid.add_widget(self._range_tile(p))
            else:
                for amount in p.amounts:
                    self.grid.add_widget(self._tile(p, amount))
        self._fit_rows()
        self.back_cancel()

    def _fit_rows(self, *_: Any) -> None:
        """Tiles as tall as designed, or shorter so that every row fits above the footer
        (a balance line or a long catalog must not push tiles under the buttons)."""
        rows = max(1, -(-len(self.grid.children) // self.grid.cols))
        room = (self.grid.height - self.grid.spacing[1] * (rows - 1)) / rows
        self.grid.row_default_height = max(dp(84), min(self._row_height, room))

    def _tab(self, kind: ProductKind) -> None:
        self.kind = kind
        self.ctx.rt.touched()
        self.update(self.ctx.rt.state)

    def _choose(self, p: Product, amount: int) -> None:
        self.ctx.post(ev.ChooseProduct(p.id, amount, self.today()))

    def _tile(self, p: Product, amount: int) -> Tile:
        _ = self._
        lang = self.ctx.tr.lang
        tile = Tile(on_press=lambda: self._choose(p, amount), action=f"product_{p.id}_{amount}",
                    padding=(dp(14), dp(10)), spacing=dp(2))
        if p.kind is ProductKind.AIRTIME:
            # Large text: the amount alone (the tab already says what it is).
            tile.add_widget(label(self.ctx.money(amount),
                                  theme.FS_TITLE * (1.0 if theme.LARGE else 1.1), bold=True))
            if not theme.LARGE:
                tile.add_widget(label(p.label(lang), theme.FS_SMALL, theme.MUTED))
        else:
            tile.add_widget(label(p.label(lang), theme.FS_BODY, bold=True))
            if p.validity_days:
                tile.add_widget(label(_("{n} days").format(n=p.validity_days), theme.FS_BODY))
            if p.text(lang):
                tile.add_widget(label(p.text(lang), theme.FS_SMALL, theme.MUTED))
            tile.add_widget(label(self.ctx.money(amount), theme.FS_TITLE, theme.PRIMARY,
                                  bold=True))
        promo = p.promo_text(lang)
        if promo:
            until = format_date(p.promo_until, lang) if p.promo_until else ""
            text = promo + (" · " + _("until {date}").format(date=until) if until else "")
            tile.add_widget(label(text, theme.FS_SMALL, theme.PROMO, bold=True))
        return tile

    def _range_tile(self, p: Product) -> Tile:
        _ = self._
        tile = Tile(on_press=lambda: self._ask_amount(p), action=f"product_{p.id}",
                    padding=(dp(14), dp(8)), spacing=dp(2))
        assert p.range_min is not None and p.range_max is not None
        tile.add_widget(label(p.label(self.ctx.tr.lang),
                              theme.FS_SMALL if theme.LARGE else theme.FS_BODY, bold=True))
        tile.add_widget(label(f"{self.ctx.money(p.range_min)} – {self.ctx.money(p.range_max)}",
                              theme.FS_SMALL if theme.LARGE else theme.FS_BODY, theme.PRIMARY,
                              bold=True))
        return tile

    def _ask_amount(self, p: Product) -> None:
        AmountDialog(self, p).open()

    def _ask_network(self) -> None:
        _ = self._
        s = self.ctx.rt.state
        answers = [(op.name, "primary" if op.id == s.txn.operator else "neutral",
                    f"network_{op.id}", lambda op=op: self.ctx.post(ev.ChooseOperator(op.id)))
                   for op in self.ctx.catalog.operators]
        Dialog(_("Which network is your number with?"),
               _("Numbers moved to another network keep their first digits. Choose your "
                 "network if it is not {name}.").format(
                   name=self.ctx.catalog.operator(s.txn.operator).name
                   if s.txn.operator else ""),
               answers).open()


def balance_text(ctx: Any, b: Any, first: str = N_("Balance: {amount}"),
                 today: date | None = None) -> str:
    """'Balance: ₱12.50 · 300 MB data · active until 5 Dec 2026' (what the operator told);
    a validity date already past is said plainly, with what fixes it."""
    _ = ctx.tr
    parts = []
    if b.airtime is not None:
        parts.append(_(first).format(amount=ctx.money(b.airtime)))
    if b.data_mb is not None:
        data = (f"{b.data_mb / 1024:.1f} GB" if b.data_mb >= 1024 else f"{b.data_mb} MB")
        parts.append(_("{data} data").format(data=data))
    if b.valid_until:
        try:
            until_day: date | None = date.fromisoformat(b.valid_until)
        except ValueError:
            until_day = None
        if until_day is None:
            parts.append(_("active until {date}").format(date=b.valid_until))
        elif until_day < (today or date.today()):
            parts.append("⚠ " + _("validity ended on {date}: a Keep my number pack "
                                  "restores it").format(
                date=format_date(until_day, ctx.tr.lang)))
        else:
            parts.append(_("active until {date}").format(
                date=format_date(until_day, ctx.tr.lang)))
    return " · ".join(parts)


class AmountDialog(ModalView):
    """Whole units only: the customer types 75 for ₱75.00."""

    def __init__(self, screen: ProductScreen, p: Product) -> None:
        super().__init__(size_hint=(0.6, 0.92), auto_dismiss=False,
                         background_color=(0, 0, 0, 0.55))
        self.screen, self.p, self.digits = screen, p, ""
        _ = screen._
        cur = p.currency
        self.unit = 10 ** exponent(cur)
        box = Panel(orientation="vertical", padding=dp(24), spacing=dp(12))
        assert p.range_min is not None and p.range_max is not None
        box.add_widget(label(_("Type the amount"), theme.FS_TITLE, bold=True))
        box.add_widget(label(_("From {lo} to {hi}").format(
            lo=screen.ctx.money(p.range_min), hi=screen.ctx.money(p.range_max)),
            theme.FS_BODY, theme.MUTED))
        self.display = label("", theme.FS_HUGE, bold=True)
        box.add_widget(self.display)
        box.add_widget(Keypad(self._key))
        row = BoxLayout(size_hint_y=None, height=theme.TOUCH, spacing=dp(16))
        row.add_widget(KButton(text=_("✕ Cancel"), style="danger", action="amount_cancel",
                               on_press=self.dismiss))
        self.ok = KButton(text=_("OK ▶"), style="primary", action="amount_ok",
                          on_press=self._ok)
        row.add_widget(self.ok)
        box.add_widget(row)
        self.add_widget(box)
        self._show()

    def key(self, key: str) -> None:
        """A digit, "del" or "clear" from a physical keypad."""
        self._key(key)

    def _key(self, key: str) -> None:
        if key == "del":
            self.digits = self.digits[:-1]
        elif key == "clear":
            self.digits = ""
        elif len(self.digits) < 6 and (self.digits or key != "0"):
            self.digits += key
        self.screen.ctx.rt.touched()
        self._show()

    def amount(self) -> int:
        return int(self.digits or "0") * self.unit

    def _show(self) -> None:
        self.display.text = self.screen.ctx.money(self.amount())
        ok = self.p.accepts(self.amount())
        self.ok.disabled = not ok
        self.ok.opacity = 1 if ok else 0.4

    def _ok(self) -> None:
        self.dismiss()
        self.screen._choose(self.p, self.amount())
