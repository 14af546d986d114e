"""What the kiosk needs from a mobile-wallet QR gateway: dynamic orders, polled by reference."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class WalletOrder:
    ref: str
    payload: str           # the string to render as a QR code
    expires_at: float      # unix time


@dataclass(frozen=True)
class WalletStatus:
    state: str             # "pending" | "paid" | "expired" | "closed" | "declined"
    amount: int = 0
    provider_ref: str = ""


class WalletProvider(ABC):
    @abstractmethod
    async def create_order(self, ref: str, amount: int, expires_in_s: int) -> WalletOrder: ...

    @abstractmethod
    async def status(self, ref: str) -> WalletStatus: ...

    @abstractmethod
    async def close(self, ref: str) -> WalletStatus:
        """Close an unpaid order; returns its final state (it may have been paid meanwhile)."""
