"""A ZVT payment terminal on the far side of a real pty, byte for byte.

The kiosk opens `sim.link` with pyserial exactly as it opens `/dev/serial/by-id/...`; the
pty, the link, unplugging and cleaning up are `drivers/ptysim.py`'s. After `unplug(seconds)`
the terminal has restarted (it forgot the registration, its ledger is kept: a real terminal
keeps its journal across power loss). As a kiosk device it is the driver "zvt-sim"
(drivers/registry.py): the real ZVT driver on this simulator's link.

It speaks the terminal's side with `zvt.Channel` and the message functions of `zvt`: every
valid frame is ACKed (a bad CRC is NAKed), every command answered with 80 00 00 (or 84 xx),
and every message it sends waits for the ECR's ACK (repeated on NAK or after `t1_s`, 3 times)
and then for the ECR's 80 00 00 (within `t3_s`). An authorisation goes: 04 FF "insert card",
04 FF "PIN", 04 FF "waiting for the bank", 04 0F (result), 06 D1 receipt lines (when the ECR
registered to print them), then 06 0F (approved) or 06 1E (declined, aborted).

Like a real terminal, an approval whose 04 0F the ECR never confirms (no ACK, no 80 00 00,
or 84 xx) is reversed by the terminal itself ("auto-reversal"), so money is never taken
without the ECR knowing. Scenario controls are plain attributes read at the start of each
step, so any thread may set them: `next_outcome` (kept until changed), `reversal_works`,
`refuse_reversal_with`, `card_pan`, `offline`, `slow_s`, `step_s`, `no_answer_s`. `ledger`
is what physically happened.

Faults after the approval: "no_completion" (the 04 0F is confirmed, then silence: no receipt
lines, no 06 0F; the approval stands) and "no_completion_reversed" (the same, and the
terminal reverses the payment by itself: a reversal the ECR asks for afterwards is answered
B4 "already reversed").
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from kiosk.money import CURRENCIES, fmt

from ..ptysim import PtySimulator
from . import zvt
from .pan import pan_bmp
from .zvt import Apdu, Code, StatusInformation

log = logging.getLogger("kiosk.card.sim")

OUTCOMES = ("approve", "decline", "customer_abort", "no_answer", "slow", "garbage",
            "no_completion", "no_completion_reversed")
NO_COMPLETION = ("no_completion", "no_completion_reversed")
_NOISE = bytes(b for b in range(256) if b not in (zvt.DLE, zvt.ACK, zvt.NAK))


@dataclass
class Transaction:
    kind: str                    # "payment" | "reversal" | "auto_reversal"
    amount: int
    outcome: str                 # "approved" | "declined" | "aborted" | "refused"
    receipt_no: str = ""         # this transaction's own receipt number
    trace: str = ""
    reverses: str = ""           # reversals: the receipt number of the payment
    result_code: int = 0
    delivered: bool = True       # the ECR confirmed the result (04 0F, or 06 1E)
    completed: bool = True       # the terminal ended it with 06 0F / 06 1E


@dataclass
class Ledger:
    """What the terminal did: approved payments and reversals by receipt number, every
    transaction in order."""
    authorised: dict[str, int] = field(default_factory=dict)
    reversed: dict[str, int] = field(default_factory=dict)
    transactions: list[Transaction] = field(default_factory=list)


class _Unplugged(Exception):
    pass


class ZvtSimulator(PtySimulator):
    link_name = "terminal"
    temp_prefix = "zvt-"
    thread_name = "zvt-sim"
    what = "ZVT terminal"
    logger = log
    unplug_wait_s = 3.0
    join_s = 5.0

    def __init__(self, link_dir: str | None = None, terminal_id: str = "52500038",
                 password: str = "000000", currency: int = 608, step_s: float = 0.3,
                 slow_s: float = 2.0, no_answer_s: float = 30.0, t1_s: float = 0.5,
                 t3_s: float = 3.0, reversal_last_only: bool = True, seed: int = 7) -> None:
        super().__init__(link_dir)
        self.terminal_id, self.password, self.currency = terminal_id, password, currency
        self.step_s, self.slow_s, self.no_answer_s = step_s, slow_s, no_answer_s
        self.t1_s, self.t3_s = t1_s, t3_s
        self.next_outcome = "approve"
        self.approve_amount: int | None = None   # approve this instead of what was asked
        self.reversal_works = True
        self.refuse_reversal_with = "abort"      # "abort": 80 00 00, then 06 1E <code>;
                                                 # "negative": 84 <code> 00 at once
        self.card_pan = ""       # "476173EEEEEE0119" (E: masked digits) or a clear number:
                                 # sent in BMP 22 and printed on the receipt as it is
        self.reversal_last_only = reversal_last_only    # most terminals: the last one only
        self.offline = False                            # silent: no ACK, no answer
        self.ledger = Ledger()
        self.registered = False
        self.config = 0
        self.commands: list[str] = []                   # names of the commands received
        self._rng = random.Random(seed)
        self._trace = self._receipt = 0
        self._last: tuple[bytes, list[str]] | None = None   # 04 0F and lines, for 06 20
        self._channel = zvt.Channel()
        self._inbox: deque[Apdu] = deque()
        self._abort_requested = False
        self._noise_next = b""
        self._corrupt_next = False
        self._lock = threading.Lock()

    @classmethod
    def for_driver(cls, currency: str = "PHP", password: str = "000000",
                   **_driver_options: object) -> ZvtSimulator:
        """The terminal for a kiosk's ZVT driver ("zvt-sim"): its currency and password."""
        if currency not in CURRENCIES:
            raise ValueError(f"unknown currency {currency!r}")
        return cls(currency=CURRENCIES[currency][0], password=password)

    # ------------------------------------------------------------------ the line
    def _new_line(self) -> None:
        self._channel = zvt.Channel()
        self._inbox.clear()

    def _replugged(self) -> None:
        self.registered = False
        self._abort_requested = False

    def _serve_once(self) -> None:
        try:
            self._pump(self.poll_s)
            while self._inbox:
                self._handle(self._inbox.popleft())
        except _Unplugged:
            pass

    def _pump(self, timeout: float) -> list[zvt.LinkEvent]:
        """Read what comes within `timeout`, answer ACK/NAK, queue received APDUs; return
        the link events about our own frame (Delivered / SendFailed)."""
        if self._unplug_for is not None or self._stop.is_set():
            raise _Unplugged
        chunk = self._read(timeout)
        if not chunk:
            return []
        if self.offline:
            return []
        mine: list[zvt.LinkEvent] = []
        for e in self._channel.receive_data(chunk):
            if isinstance(e, zvt.Received):
                self._inbox.append(e.apdu)
            elif isinstance(e, zvt.Malformed):
                log.debug("malformed APDU from the ECR: %s", e.error)
            else:
                mine.append(e)
        self._write(self._channel.data_to_send())
        return mine

    def _write(self, data: bytes) -> None:
        if not data:
            return
        if self._noise_next:
            data, self._noise_next = self._noise_next + data, b""
        if self._corrupt_next and len(data) > 4 and data[:2] == b"\x10\x02":
            data = data[:-1] + bytes((data[-1] ^ 0x5A,))   # one bad CRC, sent once
            self._corrupt_next = False
        self._to_host(data)

    def _send(self, apdu: bytes) -> bool:
        """One frame to the ECR, until ACKed (repeats on NAK / after t1_s)."""
        self._channel.send(apdu)
        self._write(self._channel.data_to_send())
        deadline = time.monotonic() + self.t1_s
        while True:
            for e in self._pump(max(0.0, min(0.05, deadline - time.monotonic()))):
                if isinstance(e, zvt.Delivered):
                    return True
                if isinstance(e, zvt.SendFailed):
                    log.info("ECR did not take %s: %s", apdu[:2].hex(" "), e.reason)
                    return False
            if time.monotonic() >= deadline:
                for e in self._channel.ack_timeout():
                    if isinstance(e, zvt.SendFailed):
                        return False
                self._write(self._channel.data_to_send())
                deadline = time.monotonic() + self.t1_s

    def _tell(self, apdu: bytes) -> bool:
        """A message while the terminal has master rights: sent, then the ECR's 80 00 00
        awaited. False when the ECR never confirmed it (or said 84 xx, or the line went)."""
        try:
            if not self._send(apdu):
                return False
            deadline = time.monotonic() + self.t3_s
            while time.monotonic() < deadline:
                answer = self._next_from_ecr(deadline - time.monotonic())
                if answer is not None:
                    return answer.positive
        except _Unplugged:
            pass
        return False

    def _next_from_ecr(self, timeout: float) -> Apdu | None:
        """The ECR's next answer; commands it sends meanwhile are answered as a busy
        terminal does (06 B0 accepted, the rest refused with 84 9C "please wait")."""
        deadline = time.monotonic() + timeout
        while True:
            while self._inbox:
                apdu = self._inbox.popleft()
                if apdu.positive or apdu.negative:
                    return apdu
                self._busy_answer(apdu)
            if time.monotonic() >= deadline:
                return None
            self._pump(max(0.0, min(0.05, deadline - time.monotonic())))

    def _busy_answer(self, apdu: Apdu) -> None:
        self._note(apdu)
        if apdu.code == Code.ECR_ABORT:
            self._abort_requested = True
            self._send(zvt.positive())
        else:
            self._send(zvt.negative(zvt.RESULT_PLEASE_WAIT))

    def _wait(self, seconds: float) -> None:
        """The customer or the bank takes `seconds`; the ECR is still answered."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._abort_requested:
            self._next_from_ecr(min(0.05, deadline - time.monotonic()))

    # ------------------------------------------------------------------ commands
    def _note(self, apdu: Apdu) -> None:
        with self._lock:
            self.commands.append(apdu.name)

    def _handle(self, apdu: Apdu) -> None:
        if apdu.positive or apdu.negative:
            return                            # a late answer to something: nothing to do
        self._note(apdu)
        try:
            cmd = zvt.parse_command(apdu)
        except zvt.ZvtError as exc:
            log.info("bad command %s: %s", apdu, exc)
            self._send(zvt.negative(0x9A))    # ZVT protocol error
            return
        handlers: dict[int, Callable[[zvt.Command], None]] = {
            Code.REGISTRATION: self._registration, Code.AUTHORISATION: self._payment,
            Code.REVERSAL: self._reversal, Code.STATUS_ENQUIRY: self._status_enquiry,
            Code.REPEAT_RECEIPT: self._repeat_receipt}
        handler = handlers.get(apdu.code)
        if apdu.code == Code.ECR_ABORT:
            self._send(zvt.positive())        # nothing running: nothing to abort
        elif handler is None:
            self._send(zvt.negative(zvt.RESULT_FUNCTION_NOT_POSSIBLE))
        elif cmd.password and cmd.password != self.password:
            self._send(zvt.negative(zvt.RESULT_FUNCTION_NOT_POSSIBLE))
        elif apdu.code != Code.REGISTRATION and not self.registered \
                and apdu.code != Code.STATUS_ENQUIRY:
            self._send(zvt.negative(zvt.RESULT_NOT_REGISTERED))
        else:
            self._abort_requested = False
            handler(cmd)

    def _registration(self, cmd: zvt.Command) -> None:
        if not self._send(zvt.positive()):
            return
        if cmd.currency is not None and cmd.currency != self.currency:
            self._tell(zvt.abort(0x6F))       # wrong currency
            return
        self.config = cmd.config or 0
        self.registered = True
        self._tell(zvt.completion(self.terminal_id, self.currency))

    def _status_enquiry(self, cmd: zvt.Command) -> None:
        if self._send(zvt.positive()):
            self._tell(zvt.completion(sw_version="ZVTSIM-1.0", terminal_status=0x00))

    def _step(self, code: int, seconds: float) -> bool:
        """An intermediate status, then the time it stands for; False once the ECR asked to
        abort (06 B0) or is gone."""
        if self.config & zvt.Config.INTERMEDIATE_STATUS and not self._tell(
                zvt.intermediate_status(code)):
            return False
        self._wait(seconds)
        return not self._abort_requested

    def _payment(self, cmd: zvt.Command) -> None:
        if not self._send(zvt.positive()):
            return
        amount, outcome = cmd.amount or 0, self.next_outcome
        try:
            if not self._until_the_bank_answers(outcome):
                self._end_unpaid(amount, zvt.RESULT_ABORTED)
                return
        except _Unplugged:
            self._end_unpaid(amount, zvt.RESULT_ABORTED, tell=False)
            raise
        approved = outcome != "decline"
        if approved and self.approve_amount is not None:
            amount = self.approve_amount          # a terminal that approves another amount
        self._trace += 1
        self._receipt += 1
        info = StatusInformation(
            result_code=zvt.RESULT_OK if approved else zvt.RESULT_DECLINED, amount=amount,
            currency=self.currency, trace=f"{self._trace:06d}",
            time=time.strftime("%H%M%S"), date=time.strftime("%m%d"),
            terminal_id=self.terminal_id, auth_code=f"{self._rng.randrange(10**6):06d}"
            if approved else "", receipt_no=f"{self._receipt % 10000:04d}", card_type=6,
            card_name="Mastercard", payment_type=0x60)
        tx = Transaction("payment", amount, "approved" if approved else "declined",
                         info.receipt_no, info.trace, result_code=info.result_code or 0)
        with self._lock:
            self.ledger.transactions.append(tx)
            if approved:
                self.ledger.authorised[info.receipt_no] = amount
        if outcome == "garbage":
            self._corrupt_next = True         # the result frame arrives with a bad CRC once
        lines = self._receipt_lines("CARD PAYMENT", info)
        result = zvt.status_information(info, self._pan())
        self._last = (result, lines)
        tx.delivered = self._tell(result)
        if not tx.delivered:
            if approved:
                self._auto_reverse(tx, "ECR did not confirm")
            return
        if approved and outcome in NO_COMPLETION:
            tx.completed = False                  # silence: no receipt, no 06 0F
            if outcome == "no_completion_reversed":
                self._auto_reverse(tx, "payment not completed")
            return
        self._print(lines)
        self._tell(zvt.completion() if approved else zvt.abort(zvt.RESULT_DECLINED))

    def _until_the_bank_answers(self, outcome: str) -> bool:
        """Card, PIN, host: False when the customer or the ECR aborted first."""
        pace = self.slow_s if outcome == "slow" else self.step_s
        if outcome == "garbage":
            self._noise_next = bytes(self._rng.choice(_NOISE) for _ in range(11))
        for code in (0x0A, 0x01):             # insert card, PIN
            if not self._step(code, pace) or outcome == "customer_abort":
                return False
        if self.config & zvt.Config.INTERMEDIATE_STATUS:
            self._tell(zvt.intermediate_status(0x04))          # waiting for the bank
        if outcome != "no_answer":
            self._wait(pace)
            return True
        # The bank takes longer than the ECR waits (T4); an ECR abort is too late now.
        deadline = time.monotonic() + self.no_answer_s
        while time.monotonic() < deadline:
            self._next_from_ecr(0.05)
        return True

    def _end_unpaid(self, amount: int, code: int, tell: bool = True) -> None:
        tx = Transaction("payment", amount, "aborted", result_code=code, delivered=False)
        with self._lock:
            self.ledger.transactions.append(tx)
        if tell:
            tx.delivered = self._tell(zvt.abort(code))

    def _auto_reverse(self, payment: Transaction, why: str) -> None:
        """The ECR never confirmed an approval (or the terminal could not complete it): the
        terminal reverses it by itself."""
        log.warning("approval %s: %s: auto-reversal", payment.receipt_no, why)
        self._trace += 1
        self._receipt += 1
        info = StatusInformation(result_code=zvt.RESULT_OK, amount=payment.amount,
                                 currency=self.currency, trace=f"{self._trace:06d}",
                                 original_trace=payment.trace, terminal_id=self.terminal_id,
                                 receipt_no=f"{self._receipt % 10000:04d}")
        with self._lock:
            self.ledger.reversed[payment.receipt_no] = payment.amount
            self.ledger.transactions.append(Transaction(
                "auto_reversal", payment.amount, "approved", info.receipt_no, info.trace,
                reverses=payment.receipt_no, delivered=False))
        self._last = (zvt.status_information(info), self._receipt_lines("AUTO REVERSAL", info))

    def _reversal(self, cmd: zvt.Command) -> None:
        negative = self.refuse_reversal_with == "negative"
        if not negative and not self._send(zvt.positive()):
            return
        receipt = cmd.receipt_no
        with self._lock:
            payments = [t for t in self.ledger.transactions
                        if t.kind == "payment" and t.outcome == "approved"]
            known = receipt in self.ledger.authorised
            done = receipt in self.ledger.reversed
            last = bool(payments) and payments[-1].receipt_no == receipt
        amount = self.ledger.authorised.get(receipt, 0)
        refused = not (self.reversal_works and known and not done
                       and (last or not self.reversal_last_only))
        if negative and not (refused or self._send(zvt.positive())):
            return
        if not (negative and refused):
            self._step(0x0E, self.step_s)     # please wait
        if refused:
            code = zvt.RESULT_ALREADY_REVERSED if done else zvt.RESULT_REVERSAL_NOT_POSSIBLE
            with self._lock:
                self.ledger.transactions.append(Transaction(
                    "reversal", amount, "refused", reverses=receipt, result_code=code))
            if negative:
                self._send(zvt.negative(code))    # 84 <code> 00: the command is refused
            else:
                self._tell(zvt.abort(code))
            return
        original = next(t for t in payments if t.receipt_no == receipt)
        self._trace += 1
        self._receipt += 1
        info = StatusInformation(result_code=zvt.RESULT_OK, amount=amount,
                                 currency=self.currency, trace=f"{self._trace:06d}",
                                 original_trace=original.trace, time=time.strftime("%H%M%S"),
                                 date=time.strftime("%m%d"), terminal_id=self.terminal_id,
                                 receipt_no=f"{self._receipt % 10000:04d}", card_type=6,
                                 card_name="Mastercard")
        tx = Transaction("reversal", amount, "approved", info.receipt_no, info.trace,
                         reverses=receipt)
        with self._lock:
            self.ledger.reversed[receipt] = amount
            self.ledger.transactions.append(tx)
        lines = self._receipt_lines("REVERSAL", info)
        self._last = (zvt.status_information(info, self._pan()), lines)
        tx.delivered = self._tell(self._last[0])
        if tx.delivered:
            self._print(lines)
            self._tell(zvt.completion())

    def _repeat_receipt(self, cmd: zvt.Command) -> None:
        if not self._send(zvt.positive()):
            return
        if self._last is None:
            self._tell(zvt.abort(zvt.RESULT_FUNCTION_NOT_POSSIBLE))   # nothing to repeat
            return
        result, lines = self._last
        if self._tell(result):
            self._print(["** DUPLICATE **", *lines])
            self._tell(zvt.completion())

    # ------------------------------------------------------------------ receipts
    def _print(self, lines: list[str]) -> None:
        wanted = zvt.Config.PRINT_LINES | zvt.Config.ECR_PRINTS_PAYMENT_RECEIPTS
        if self.config & wanted != wanted:
            return                            # the terminal prints (or has no printer)
        for i, line in enumerate(lines):
            if not self._tell(zvt.print_line(line, 0x81 if i == len(lines) - 1 else 0x00)):
                return

    def _receipt_lines(self, title: str, info: StatusInformation) -> list[str]:
        """The customer copy: the card type, and `card_pan` as it is when set (the driver
        must mask it)."""
        alpha = next((a for a, (num, _) in CURRENCIES.items() if num == self.currency), "")
        amount = fmt(info.amount or 0, alpha) if alpha else f"{info.amount} ({self.currency})"
        lines = ["ZVT SIMULATOR", "TOP-UP KIOSK", time.strftime("%d.%m.%Y %H:%M"), title,
                 info.card_name or "CARD", f"AMOUNT {amount}",
                 "APPROVED" if info.approved else f"DECLINED ({info.result_code:02X})",
                 f"TID {info.terminal_id}  TRACE {info.trace}", f"RECEIPT {info.receipt_no}"]
        if info.auth_code:
            lines.append(f"AUTH CODE {info.auth_code}")
        if info.original_trace:
            lines.append(f"ORIGINAL TRACE {info.original_trace}")
        if self.card_pan:
            lines.insert(5, f"PAN {self.card_pan}")  # as the terminal has it, masked or not
        return lines

    def _pan(self) -> bytes:
        """BMP 22 with `card_pan`, or nothing."""
        return pan_bmp(self.card_pan) if self.card_pan else b""
