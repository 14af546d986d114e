"""What the kiosk needs from a top-up provider (an aggregator or an operator's own API).

Outcome rules: a timeout, a dropped connection or a 5xx is UNKNOWN, never FAILED. UNKNOWN
is resolved by `status(ref)` with the same reference; the kiosk never relies on the
provider to de-duplicate a retried reference.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kiosk.catalog import Product


class TopUpStatus(str, Enum):
    SUCCESSFUL = "successful"
    FAILED = "failed"
    UNKNOWN = "unknown"        # no final answer yet: look it up again later
    NOT_FOUND = "not_found"    # the provider never received this reference


@dataclass(frozen=True)
class TopUpAnswer:
    status: TopUpStatus
    operator_ref: str = ""
    reason: str = ""           # message key for the customer when FAILED


@dataclass(frozen=True)
class Offer:
    """Something the provider sells for one operator: airtime, or bundles (data packs,
    monthly/quarterly packs and validity packs are all bundles to an aggregator), either at
    FIXED amounts or in a RANGE. Minor units of the kiosk's currency."""
    kind: str                             # "airtime" | "bundle"
    amounts: tuple[int, ...] = ()         # FIXED
    range_min: int | None = None          # RANGE
    range_max: int | None = None
    provider_id: str = ""                 # the provider's own id of what it sells

    def covers_amount(self, amount: int) -> bool:
        if self.range_min is not None and self.range_max is not None:
            return self.range_min <= amount <= self.range_max
        return amount in self.amounts

    def covers(self, product: Product) -> bool:
        """Can every amount the kiosk would sell of `product` be bought here? (All or
        nothing: the kiosk never shows a tile the provider would refuse.)"""
        want = "airtime" if product.kind.value == "airtime" else "bundle"
        if self.kind != want:
            return False
        if product.is_range:
            assert product.range_min is not None and product.range_max is not None
            return (self.range_min is not None and self.range_max is not None
                    and self.range_min <= product.range_min
                    and product.range_max <= self.range_max)
        return bool(product.amounts) and all(self.covers_amount(a) for a in product.amounts)


def offered(products: list[Product], offers: list[Offer] | None) -> tuple[str, ...]:
    """Ids of the catalog products some offer covers (all of them when the provider does
    not list what it sells: offers is None)."""
    if offers is None:
        return tuple(p.id for p in products)
    return tuple(p.id for p in products if any(o.covers(p) for o in offers))


@dataclass(frozen=True)
class Balance:
    """A subscriber's balance as the operator reports it (None: not reported)."""
    airtime: int | None = None            # minor units
    data_mb: int | None = None
    valid_until: str = ""                 # ISO date the number stays active until


class TopUpBackend(ABC):
    @abstractmethod
    async def lookup_subscriber(self, iccid: str) -> str | None:
        """ICCID -> phone number (national format), or None when unknown."""

    @abstractmethod
    async def topup(self, ref: str, msisdn: str, operator: str, product_id: str,
                    amount: int, kind: str = "airtime") -> TopUpAnswer: ...

    @abstractmethod
    async def status(self, ref: str) -> TopUpAnswer: ...

    async def reachable(self) -> bool:
        return True

    async def detect_operator(self, msisdn: str) -> str | None:
        """International number -> the kiosk's operator id the provider routes it to (a
        ported number keeps its prefix but changes operator). None: the provider cannot
        tell, the number plan decides. Raises when the provider cannot be asked."""
        return None

    async def offers(self, operator: str) -> list[Offer] | None:
        """What the provider sells for this operator now; None when it does not say (every
        catalog product is offered)."""
        return None

    async def balance(self, msisdn: str, operator: str) -> Balance | None:
        """Balance inquiry where the operator offers it; None otherwise."""
        return None
