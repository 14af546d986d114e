"""An in-process top-up provider for demos and tests, with faults on demand.

`mode` decides the answer to the next top-ups: "succeed", "fail" (operator rejects it),
or "timeout" (the credit is committed but the reply is lost: the kiosk sees UNKNOWN and
must find the success by looking the reference up). It keeps a ledger of credits per
reference, so tests can check that nothing is credited twice.
"""

from __future__ import annotations

import asyncio
import itertools

from kiosk.luhn import check_digit

from .base import Balance, Offer, TopUpAnswer, TopUpBackend, TopUpStatus


def _iccid(body: str) -> str:
    return body + check_digit(body)


# Demo SIM cards: ICCID -> the number the operator has on file for it.
DEMO_SIMS: dict[str, str] = {
    _iccid("898963010000000001"): "09171234567",   # Globe
    _iccid("898963020000000002"): "09181234321",   # Smart
    _iccid("898963030000000003"): "09951112222",   # Globe
}
UNKNOWN_SIM = _iccid("898963990000000009")          # a SIM the operator does not know


class SimulatedBackend(TopUpBackend):
    MODES = ("succeed", "fail", "timeout")

    def __init__(self, delay_s: float = 1.0, timeout_s: float = 3.0) -> None:
        self.delay_s = delay_s
        self.timeout_s = timeout_s
        self.mode = "succeed"
        self.fail_reason = "backend.rejected"
        self.up = True
        self.ledger: dict[str, int] = {}           # ref -> amount credited
        self.failed: set[str] = set()
        self.numbers: dict[str, str] = {}          # ref -> number credited
        self.credited_to: dict[str, int] = {}      # number -> sum credited (running total)
        self.calls: list[str] = []
        self._ids = itertools.count(700001)

    async def lookup_subscriber(self, iccid: str) -> str | None:
        await asyncio.sleep(self.delay_s / 4)
        return DEMO_SIMS.get(iccid)

    async def topup(self, ref: str, msisdn: str, operator: str, product_id: str,
                    amount: int, kind: str = "airtime") -> TopUpAnswer:
        self.calls.append(ref)
        await asyncio.sleep(self.delay_s)
        if not self.up:
            raise ConnectionError("backend unreachable")
        if ref in self.ledger:                       # a well-behaved provider de-duplicates
            return TopUpAnswer(TopUpStatus.SUCCESSFUL, f"OP{ref[-6:]}")
        if self.mode == "fail":
            self.failed.add(ref)
            return TopUpAnswer(TopUpStatus.FAILED, reason=self.fail_reason)
        self.ledger[ref] = amount
        self.numbers[ref] = msisdn
        self.credited_to[msisdn] = self.credited_to.get(msisdn, 0) + amount
        if self.mode == "timeout":
            await asyncio.sleep(self.timeout_s)
            raise TimeoutError("reply lost after the credit was committed")
        return TopUpAnswer(TopUpStatus.SUCCESSFUL, f"OP{next(self._ids)}")

    async def status(self, ref: str) -> TopUpAnswer:
        await asyncio.sleep(self.delay_s / 4)
        if not self.up:
            raise ConnectionError("backend unreachable")
        if ref in self.ledger:
            return TopUpAnswer(TopUpStatus.SUCCESSFUL, f"OP{ref[-6:]}")
        if ref in self.failed:
            return TopUpAnswer(TopUpStatus.FAILED, reason=self.fail_reason)
        return TopUpAnswer(TopUpStatus.NOT_FOUND)

    async def reachable(self) -> bool:
        return self.up

    async def detect_operator(self, msisdn: str) -> str | None:
        await asyncio.sleep(self.delay_s / 10)
        if not self.up:
            raise ConnectionError("backend unreachable")
        return None                                  # the number plan decides

    async def offers(self, operator: str) -> list[Offer] | None:
        if not self.up:
            raise ConnectionError("backend unreachable")
        return None                                  # everything in the catalog

    async def balance(self, msisdn: str, operator: str) -> Balance | None:
        """A demo balance that grows with what this backend credited to the number."""
        credited = self.credited_to.get(msisdn, 0)
        return Balance(airtime=1250 + credited, data_mb=300, valid_until="2026-12-05")
