"""What the kiosk needs from a top-up provider (an aggregator or an operator's own API).

Outcome rules: a timeout, a dropped connection or a 5xx is UNKNOWN, never FAILED. UNKNOWN
is resolved by `status(ref)` with the same reference; the kiosk never relies on the
provider to de-duplicate a retried reference.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum


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


class TopUpBackend(ABC):
    @abstractmethod
    async def lookup_subscriber(self, iccid: str) -> str | None:
        """ICCID -> phone number (national format), or None when unknown."""

    @abstractmethod
    async def topup(self, ref: str, msisdn: str, operator: str, product_id: str,
                    amount: int) -> TopUpAnswer: ...

    @abstractmethod
    async def status(self, ref: str) -> TopUpAnswer: ...

    async def reachable(self) -> bool:
        return True
