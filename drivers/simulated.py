"""In-process simulated devices: real package code used by `make run` (demo panel) and tests.

They keep their own record of what physically happened (notes stacked and returned, card
payments authorised and reversed, receipts printed) so tests can compare the device's truth
with what the kiosk journaled. Timings are scaled by `delay_s` (tests use tiny values).
Byte-exact protocol simulators over a pty replace these per device kind in later drivers.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kiosk import events as ev

from .base import (
    BillAcceptor,
    CardResult,
    CardTerminal,
    PrinterError,
    ReceiptPrinter,
    SimReader,
    Sink,
)


class SimulatedSimReader(SimReader):
    def __init__(self, delay_s: float = 0.3) -> None:
        self.delay_s = delay_s
        self.card: str | None = None

    def insert(self, iccid: str) -> None:
        """A customer pushes a SIM (in its card adapter) into the reader."""
        self.card = iccid
        loop = asyncio.get_running_loop()
        loop.call_later(self.delay_s, self._read, iccid)

    def _read(self, iccid: str) -> None:
        if self.card == iccid:
            self.sink(ev.SimIdentified(iccid))

    def remove(self) -> None:
        if self.card is not None:
            self.card = None
            self.sink(ev.SimRemoved())

    def diagnostics(self) -> dict[str, object]:
        return {"driver": "simulated", "card_present": self.card is not None}


@dataclass
class CashRecord:
    stacked: list[int] = field(default_factory=list)
    returned: list[int] = field(default_factory=list)
    rejected: int = 0


class SimulatedBillAcceptor(BillAcceptor):
    def __init__(self, denominations: tuple[int, ...] = (), delay_s: float = 0.4) -> None:
        self.denominations = tuple(denominations)
        self.delay_s = delay_s
        self.enabled = False
        self.escrow: int | None = None
        self.key = ""                              # the note in escrow's name
        self._seq = itertools.count(1)
        self.record = CashRecord()
        self.fault: str | None = None
        self.commit: Callable[[ev.Record], bool] | None = None   # the kiosk's money gate

    pending_note: Callable[[], Any] | None = None          # set by the kiosk

    async def start(self, sink: Sink) -> None:
        self.sink = sink
        # This device stacks a note and reports it in one go: a note the journal says was
        # told to stack with no outcome never got into the box; it was in escrow when the
        # power went, and escrow gives it back.
        pending = self.pending_note() if self.pending_note is not None else None
        if pending is not None:
            self._outcome(ev.NoteReturned(pending.value, pending.key))

    # ---- what the customer does (demo panel / tests)
    def insert(self, value: int) -> bool:
        """Feed a note. Returns False when the acceptor pushes it straight back."""
        if not self.enabled or self.escrow is not None or self.fault:
            self.record.rejected += 1
            return False
        if value not in self.denominations:
            self.record.rejected += 1
            asyncio.get_running_loop().call_later(
                self.delay_s, self.sink, ev.NoteRejected("unknown_note"))
            return False
        self.escrow, self.key = value, f"sim:{next(self._seq)}"
        asyncio.get_running_loop().call_later(self.delay_s, self.sink,
                                              ev.NoteEscrowed(value, self.key))
        return True

    def _outcome(self, e: ev.Record) -> None:
        """A note's outcome enters through the gate (which tells the kiosk) when there is one."""
        if self.commit is None:
            self.sink(e)
        elif not self.commit(e):
            raise RuntimeError(f"{e.kind()} not journaled")

    def jam(self) -> None:
        self.fault = "jam"
        self.enabled = False
        self.sink(ev.CashFault("jam"))

    def clear_fault(self) -> None:
        self.fault = None
        self.sink(ev.DeviceStatus("cash", True))

    # ---- what the kiosk commands
    def enable(self) -> None:
        self.enabled = self.fault is None

    def disable(self) -> None:
        self.enabled = False

    def stack(self, value: int, key: str = "") -> None:
        if self.escrow != value or (key and key != self.key):
            return
        key = self.key

        def vend_valid() -> None:
            self.escrow = None
            self.record.stacked.append(value)
            self._outcome(ev.NoteCredited(value, key))
        asyncio.get_running_loop().call_later(self.delay_s, vend_valid)

    def return_note(self, value: int, key: str = "") -> None:
        if self.escrow != value or (key and key != self.key):
            return
        key = self.key

        def returned() -> None:
            self.escrow = None
            self.record.returned.append(value)
            self._outcome(ev.NoteReturned(value, key))
        asyncio.get_running_loop().call_later(self.delay_s, returned)

    def diagnostics(self) -> dict[str, object]:
        return {"driver": "simulated", "enabled": self.enabled, "fault": self.fault,
                "stacked": sum(self.record.stacked), "notes": len(self.record.stacked)}


@dataclass
class CardLedger:
    authorised: dict[str, int] = field(default_factory=dict)
    reversed: dict[str, int] = field(default_factory=dict)


class SimulatedCardTerminal(CardTerminal):
    OUTCOMES = ("approve", "decline")

    def __init__(self, delay_s: float = 1.5) -> None:
        self.delay_s = delay_s
        self.next_outcome = "approve"
        self.reversal_works = True
        self.ledger = CardLedger()
        self._abort = asyncio.Event()
        self._trace = itertools.count(1)

    async def authorise(self, ref: str, amount: int) -> CardResult:
        self._abort = asyncio.Event()
        try:
            await asyncio.wait_for(self._abort.wait(), self.delay_s)
            return CardResult(False, reason="aborted")
        except TimeoutError:
            pass
        if self.next_outcome != "approve":
            return CardResult(False, reason="declined")
        trace = f"{next(self._trace):06d}"
        self.ledger.authorised[ref] = amount
        return CardResult(True, amount, auth_code=f"A{trace}", trace=trace, receipt_no=trace[-4:])

    async def abort(self) -> None:
        self._abort.set()

    async def reverse(self, ref: str, amount: int, receipt_no: str = "") -> CardResult:
        await asyncio.sleep(self.delay_s / 3)
        if not self.reversal_works or ref not in self.ledger.authorised:
            return CardResult(False, reason="declined")
        if ref not in self.ledger.reversed:
            self.ledger.reversed[ref] = amount
        return CardResult(True, amount)


class SimulatedPrinter(ReceiptPrinter):
    def __init__(self, delay_s: float = 0.5) -> None:
        self.delay_s = delay_s
        self.printed: list[tuple[list[str], str | None]] = []
        self.paper_state = "ok"

    async def print_receipt(self, lines: list[str], qr: str | None = None) -> None:
        if self.paper_state == "out":
            raise PrinterError("paper out")
        await asyncio.sleep(self.delay_s)
        self.printed.append((list(lines), qr))

    def paper(self) -> str:
        return self.paper_state
