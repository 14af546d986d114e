"""The interfaces every device driver implements.

Drivers report what happens through a `sink`: a callable taking one kiosk event
(kiosk.events), safe to call from any thread. Commands are coroutines (or plain calls
that only queue work) so the UI never waits on hardware.

The bill acceptor interface is shaped by the acceptor's escrow cycle, common to ID-003,
ccTalk, SSP and CCNET: a note is *escrowed* (the kiosk decides), then *stacked* or
*returned*; the credit point is the device's own confirmation (ID-003 vend valid),
reported as NoteCredited.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from kiosk.events import Record

Sink = Callable[[Record], None]


class DeviceError(Exception):
    """Base of device errors, split by kind as the shell reacts differently to each."""


class DeviceGone(DeviceError):
    """Unplugged, port vanished, service stopped."""


class DeviceTimeout(DeviceError):
    """The device did not answer in time."""


class DeviceFault(DeviceError):
    """The device answered, with a fault (jam, paper out, ...)."""


class Device:
    """What every device has; the kinds with commands of their own are abstract below."""

    name: str = "device"

    async def start(self, sink: Sink) -> None:
        self.sink = sink

    async def stop(self) -> None:
        pass

    def diagnostics(self) -> dict[str, object]:
        return {"driver": type(self).__name__}


class SimReader(Device):
    """Reports SimIdentified(iccid) on insert and SimRemoved on removal."""
    name = "sim_reader"


class BillAcceptor(Device, ABC):
    name = "cash"

    @abstractmethod
    def enable(self) -> None: ...

    @abstractmethod
    def disable(self) -> None: ...

    @abstractmethod
    def stack(self, value: int, key: str = "") -> None:
        """Accept the note in escrow named `key` (reported later as NoteCredited); a
        decision for a note that is no longer in escrow is ignored."""

    @abstractmethod
    def return_note(self, value: int, key: str = "") -> None:
        """Give the note in escrow named `key` back (reported later as NoteReturned)."""


@dataclass(frozen=True)
class CardResult:
    """What a card terminal said about one payment (or one reversal). Never a card number.

    reason: "" when approved; "declined" | "aborted" (customer or kiosk) | "offline"
    (terminal unreachable before anything was sent) | "unknown" (sent, no final answer:
    timeout or port lost mid-transaction; resolve with `CardTerminal.last_result`) |
    "not_completed" (approved, then the terminal never finished: resolve the same way).
    """
    approved: bool
    amount: int = 0
    auth_code: str = ""
    trace: str = ""
    reason: str = ""
    result_code: int | None = None        # the terminal's result code (ZVT: 0x00 = success)
    receipt_no: str = ""                  # the terminal's receipt number (needed to reverse)
    terminal_id: str = ""
    card_name: str = ""                   # card type as the terminal names it ("Mastercard")
    text: str = ""                        # the terminal's last message for the customer
    card_last4: str = ""                  # the card number's last four digits, never more
    lines: tuple[str, ...] = ()           # the terminal's receipt lines (customer copy)


class CardTerminal(Device, ABC):
    """Intermediate texts of the terminal ("Insert card", "Enter PIN") are reported through
    the sink as kiosk.events.CardText while `authorise` runs."""
    name = "card"

    @abstractmethod
    async def authorise(self, ref: str, amount: int) -> CardResult: ...

    @abstractmethod
    async def abort(self) -> None: ...

    @abstractmethod
    async def reverse(self, ref: str, amount: int, receipt_no: str = "") -> CardResult:
        """Reverse the payment `receipt_no` (approved=True: reversed)."""

    async def last_result(self, ref: str, amount: int) -> CardResult | None:
        """After an "unknown" authorisation: what the terminal says its last transaction
        was (approved=True only if it is this payment), or None when it cannot tell yet."""
        return None

    def available(self) -> bool:
        """Registered and answering: card payment may be offered."""
        return True


class PrinterError(DeviceFault):
    pass


class ReceiptPrinter(Device, ABC):
    name = "printer"

    @abstractmethod
    async def print_receipt(self, lines: list[str], qr: str | None = None) -> None:
        """Print and cut; raises PrinterError (paper out, cover open) or DeviceGone."""

    @abstractmethod
    def paper(self) -> str:
        """'ok' | 'near_end' | 'out'"""
