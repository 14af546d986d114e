"""An in-process wallet gateway for demos and tests: a "customer" pays from the demo panel.

Orders carry a real EMVCo dynamic payload (QR Ph P2M shape) so the screen shows a code a
phone could read. It keeps a ledger of what was paid per reference.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass

from kiosk.money import CURRENCIES, Money

from .emvco import merchant_payload
from .wallet import WalletOrder, WalletProvider, WalletStatus


@dataclass
class _Order:
    ref: str
    amount: int
    expires_at: float
    state: str = "pending"
    provider_ref: str = ""


class SimulatedWallet(WalletProvider):
    def __init__(self, currency: str = "PHP", merchant_name: str = "TOPUP KIOSK",
                 merchant_city: str = "MANILA", delay_s: float = 0.3) -> None:
        self.currency = currency
        self.merchant_name = merchant_name
        self.merchant_city = merchant_city
        self.delay_s = delay_s
        self.orders: dict[str, _Order] = {}
        self.ledger: dict[str, int] = {}         # ref -> amount paid by the customer
        self.up = True
        self._ids = itertools.count(1)

    async def create_order(self, ref: str, amount: int, expires_in_s: int) -> WalletOrder:
        await asyncio.sleep(self.delay_s)
        if not self.up:
            raise ConnectionError("wallet gateway unreachable")
        order = _Order(ref, amount, time.time() + expires_in_s)
        self.orders[ref] = order
        payload = merchant_payload(
            scheme_tag=28, scheme_id="ph.ppmi.p2m", merchant_id="KIOSKDEMO0001", mcc="4814",
            currency_numeric=CURRENCIES[self.currency][0],
            amount_text=Money(amount, self.currency).decimal_text().replace(",", ""),
            country="PH", name=self.merchant_name, city=self.merchant_city,
            reference=ref, terminal=ref.split("-")[0])
        return WalletOrder(ref, payload, order.expires_at)

    # ---- what the customer's phone does (demo panel / tests)
    def pay(self, ref: str) -> bool:
        order = self.orders.get(ref)
        if order is None or order.state != "pending" or time.time() > order.expires_at:
            return False
        order.state = "paid"
        order.provider_ref = f"W{next(self._ids):08d}"
        self.ledger[ref] = order.amount
        return True

    def decline(self, ref: str) -> bool:
        order = self.orders.get(ref)
        if order is None or order.state != "pending":
            return False
        order.state = "declined"
        return True

    def pending_refs(self) -> list[str]:
        return [r for r, o in self.orders.items() if o.state == "pending"]

    # ---- what the kiosk asks
    async def status(self, ref: str) -> WalletStatus:
        order = self.orders.get(ref)
        if order is None:
            return WalletStatus("closed")
        if order.state == "pending" and time.time() > order.expires_at:
            order.state = "expired"
        return WalletStatus(order.state, order.amount if order.state == "paid" else 0,
                            order.provider_ref)

    async def close(self, ref: str) -> WalletStatus:
        order = self.orders.get(ref)
        if order is not None and order.state == "pending":
            order.state = "closed"
        return await self.status(ref)
