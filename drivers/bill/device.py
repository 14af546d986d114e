"""An ID-003 banknote acceptor as a pure state machine: `handle(frame) -> bytes` answers one
host frame; customer actions and fault scenarios change its state. No I/O, no threads (the
pty simulator serialises calls under its lock); time comes from an injectable clock.

Escrow cycle, as the device reports it to STATUS_REQUEST::

    POWER_UP --RESET/ACK--> INITIALIZE (0.2 s) --> DISABLED <--INHIBIT 01/00--> IDLING
    IDLING --insert--> ACCEPTING (0.1 s) --> ESCROW(code)          held for the host
      ESCROW --STACK_1/2/ACK--> STACKING (0.2 s) --> VEND_VALID     repeated until host ACK
             --host ACK (no answer)--> STACKED (reported once) --> IDLING / DISABLED
      ESCROW --RETURN/ACK--> RETURNING (0.3 s) --> IDLING / DISABLED
      ACCEPTING --> REJECTING(reason) (0.3 s) --> IDLING           unknown / inhibited / fake

What the device's `record` counts as physical truth:
- `stacked`: a note is in the cash box from the moment the device enters VEND_VALID, polled
  or not. A STACKER_JAM note lands there when the jam is cleared; a power-up with a bill in
  the stacker counts the note (once) at power-up. RESET during STACKING finishes the note
  into the box (no VEND_VALID for the host: "stacked, not credited").
- `returned`: an escrowed note given back (RETURN; RESET or a fault during ACCEPTING/ESCROW;
  POWER_UP_BILL_IN_ACCEPTOR then RESET). Rejected notes are not escrowed: their reasons go to
  `rejected`. An ACCEPTOR_JAM note goes to `jammed` only (the technician pulls it out).
- `vend_valid_acked`: VEND_VALIDs the host acknowledged (one per note).
- `resets`: RESET commands the host sent (a driver must not reset with a note in transit).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from . import id003
from .id003 import ACK, SETTING_LENGTHS, Command, Frame, Status, encode

VERSION = b"i(PHL)100-SS ID003-05V000-00 01JAN25 SIM1"
BOOT_VERSION = b"BOOT SIM 1.00"


@dataclass
class Record:
    stacked: list[int] = field(default_factory=list)     # minor units, in the cash box
    returned: list[int] = field(default_factory=list)    # escrowed, then given back
    rejected: list[str] = field(default_factory=list)    # REJECT_REASONS names
    vend_valid_acked: int = 0
    jammed: list[int] = field(default_factory=list)      # notes caught in a jam
    resets: int = 0                                      # RESET commands taken


@dataclass
class Timings:
    accepting: float = 0.1
    initialize: float = 0.2
    stacking: float = 0.2
    returning: float = 0.3
    rejecting: float = 0.3


@dataclass
class _Step:
    status: Status
    data: bytes = b""
    duration: float | None = None       # None: held until an event
    once: bool = False                  # left after being reported once
    on_enter: Callable[[], None] | None = None
    on_leave: Callable[[], None] | None = None


class Id003Device:
    def __init__(self, denominations: dict[int, int], currency_exponent: int = 2,
                 country_code: int = 0xF0, clock: Callable[[], float] = time.monotonic,
                 timings: Timings | None = None) -> None:
        self.denominations = dict(denominations)          # escrow code -> minor units
        self.currency_table = id003.encode_currency_table(
            self.denominations, country_code, currency_exponent)
        self.clock = clock
        self.timings = timings or Timings()
        self.record = Record()
        self._steps: deque[_Step] = deque()
        self._step: _Step | None = None
        self._since = 0.0
        self._stuck: dict[Status, float] = {}
        self._counterfeit: int | None = None
        self._hold: float | None = None
        self._jam: Status | None = None
        self._fault: tuple[Status, bytes] | None = None     # held until clear_fault()
        self._note: int | None = None                       # the note in the transport
        self._code = 0
        self._in_box = False
        self._decided = False                               # STACK/RETURN taken for it
        self._jammed_note: int | None = None
        self.power_cycle()

    # ------------------------------------------------------------------ state
    def power_cycle(self, status: Status | None = None) -> None:
        """Power lost and back: settings to defaults, inhibited, waiting for RESET. A note
        caught mid-cycle decides the power-up status unless `status` is given. A fault (open
        stacker, jam) is physical and survives; it shows again after RESET."""
        self._tick()
        if status is None:
            status = self._power_up_status()
        if status is Status.POWER_UP_BILL_IN_STACKER:
            self._to_stacker()
        self.settings = {Command.ENABLE_DENOMINATIONS: b"\x00\x00", Command.SECURITY:
                         b"\x00\x00", Command.COMMUNICATION_MODE: b"\x00", Command.INHIBIT:
                         id003.INHIBIT_ON, Command.DIRECTION: b"\x00",
                         Command.OPTIONAL_FUNCTION: b"\x00\x00"}
        self._decided = False
        self._run(_Step(status))

    def _power_up_status(self) -> Status:
        if self._note is None:
            return Status.POWER_UP
        if self._in_box or (self._step is not None and self._step.status is Status.STACKING):
            return Status.POWER_UP_BILL_IN_STACKER
        return Status.POWER_UP_BILL_IN_ACCEPTOR

    @property
    def inhibited(self) -> bool:
        return self.settings[Command.INHIBIT] != id003.INHIBIT_OFF

    def status(self) -> tuple[Status, bytes]:
        self._tick()
        if self._step is not None:
            return self._step.status, self._step.data
        if self._fault is not None:
            return self._fault
        return (Status.DISABLED if self.inhibited else Status.IDLING), b""

    def _run(self, *steps: _Step) -> None:
        self._steps = deque(steps)
        self._step = None
        self._next(self.clock(), leave=False)

    def _next(self, at: float, leave: bool = True) -> None:
        if leave and self._step is not None and self._step.on_leave is not None:
            self._step.on_leave()
        self._step = self._steps.popleft() if self._steps else None
        self._since = at
        if self._step is not None:
            if self._step.duration is not None and self._step.status in self._stuck:
                self._step.duration = self._stuck.pop(self._step.status)
            if self._step.on_enter is not None:
                self._step.on_enter()

    def _tick(self) -> None:
        now = self.clock()
        while (self._step is not None and self._step.duration is not None
               and now >= self._since + self._step.duration):
            self._next(self._since + self._step.duration)

    # ------------------------------------------------------------------ the note
    def _to_stacker(self) -> None:
        if self._note is not None and not self._in_box:
            self.record.stacked.append(self._note)
        self._in_box = True

    def _give_back(self) -> None:
        if self._note is not None and not self._in_box:
            self.record.returned.append(self._note)
        self._forget_note()

    def _forget_note(self) -> None:
        self._note, self._in_box, self._decided = None, False, False

    # ------------------------------------------------------------------ host frames
    def handle(self, frame: Frame) -> bytes:
        """The bytes the device answers to one valid host frame (b"" for the host's ACK)."""
        self._tick()
        cmd, data = frame.cmd, frame.data
        if cmd == Command.ACK:
            self._host_ack()
            return b""
        if cmd == Command.STATUS_REQUEST and not data:
            status, sdata = self.status()
            if self._step is not None and self._step.once:
                self._next(self.clock())
            return encode(status, sdata)
        if cmd in SETTING_LENGTHS and len(data) == SETTING_LENGTHS[cmd]:
            self.settings[Command(cmd)] = bytes(data)
            return encode(cmd, data)
        if not data:
            return self._command(cmd)
        if cmd in (Command.HOLD, Command.WAIT):
            return self._command(cmd)
        return encode(Status.INVALID_COMMAND)

    def _command(self, cmd: int) -> bytes:
        if cmd + id003.GETTER_OFFSET in SETTING_LENGTHS:
            return encode(cmd, self.settings[Command(cmd + id003.GETTER_OFFSET)])
        answers = {Command.GET_VERSION: VERSION, Command.GET_BOOT_VERSION: BOOT_VERSION,
                   Command.GET_CURRENCY: self.currency_table}
        if cmd in answers:
            return encode(cmd, answers[Command(cmd)])
        if cmd == Command.RESET:
            self._reset()
            return encode(ACK)
        status, _ = self.status()
        in_escrow = status in (Status.ESCROW, Status.HOLDING)
        if cmd in (Command.STACK_1, Command.STACK_2, Command.RETURN) and in_escrow:
            if not self._decided:
                self._decide(stack=cmd != Command.RETURN)
            return encode(ACK)
        if cmd == Command.HOLD and in_escrow and not self._decided:
            self._run(_Step(Status.HOLDING, duration=None))
            return encode(ACK)
        if cmd == Command.WAIT:
            return encode(ACK)
        return encode(Status.INVALID_COMMAND)

    def _host_ack(self) -> None:
        if self._step is not None and self._step.status is Status.VEND_VALID:
            self.record.vend_valid_acked += 1
            self._forget_note()
            self._run(_Step(Status.STACKED, once=True))

    def _reset(self) -> None:
        self.record.resets += 1
        status = self._step.status if self._step is not None else None
        if status in (Status.STACKING, Status.POWER_UP_BILL_IN_STACKER):
            self._to_stacker()
        self._give_back()
        self.settings[Command.INHIBIT] = id003.INHIBIT_ON
        self._run(_Step(Status.INITIALIZE, duration=self.timings.initialize))

    def _decide(self, stack: bool) -> None:
        self._decided = True
        hold = [_Step(Status.ESCROW, bytes((self._code,)), self._hold)] if self._hold else []
        self._hold = None
        if not stack:
            self._run(*hold, _Step(Status.RETURNING, duration=self.timings.returning,
                                   on_leave=self._give_back))
            return
        stacking = _Step(Status.STACKING, duration=self.timings.stacking)
        if self._jam is not None:
            stacking.on_leave = self._jam_now
            self._run(*hold, stacking)
            return
        self._run(*hold, stacking, _Step(Status.VEND_VALID, on_enter=self._to_stacker))

    def _jam_now(self) -> None:
        jam, self._jam = self._jam, None
        assert jam is not None
        if self._note is not None:
            self.record.jammed.append(self._note)
        self._fault = (jam, b"")
        self._jammed_note = self._note if jam is Status.STACKER_JAM else None
        self._forget_note()

    # ------------------------------------------------------------------ customer
    def insert(self, value: int) -> bool:
        """A customer feeds a note (minor units). False when the slot is closed (not IDLING):
        the device never draws the note in and reports nothing."""
        if self.status()[0] is not Status.IDLING:
            return False
        code = next((c for c, v in sorted(self.denominations.items()) if v == value), None)
        reason = self._counterfeit
        self._counterfeit = None
        if reason is None and code is None:
            reason = id003.REJECT_CODES["discrimination"]
        elif reason is None and code in id003.inhibited_codes(
                self.settings[Command.ENABLE_DENOMINATIONS]):
            reason = id003.REJECT_CODES["inhibit"]
        accepting = _Step(Status.ACCEPTING, duration=self.timings.accepting)
        if reason is not None:
            name = id003.REJECT_REASONS.get(reason, f"unknown_0x{reason:02x}")
            self._run(accepting, _Step(Status.REJECTING, bytes((reason,)),
                                       self.timings.rejecting,
                                       on_enter=lambda: self.record.rejected.append(name)))
            return True
        assert code is not None
        self._note, self._code, self._in_box, self._decided = value, code, False, False
        self._run(accepting, _Step(Status.ESCROW, bytes((code,))))
        return True

    # ------------------------------------------------------------------ scenarios
    def counterfeit(self, reason: int = 0x72) -> None:
        """The next note inserted is rejected with `reason`."""
        self._counterfeit = reason

    def give_back(self) -> bool:
        """The note in escrow goes back to the customer with no word from the host (pulled
        back out, or handed back by the acceptor itself): RETURNING, then IDLING. False when
        no undecided note is in escrow."""
        if self.status()[0] not in (Status.ESCROW, Status.HOLDING) or self._decided:
            return False
        self._decide(stack=False)
        return True

    def hold_escrow(self, seconds: float) -> None:
        """After the next STACK/RETURN (ACKed at once) the note stays in ESCROW `seconds`
        more before the device acts; repeated STACK/RETURN meanwhile are ACKed, no effect."""
        self._hold = seconds

    def jam_after_escrow(self, where: str = "stacker") -> None:
        """The next STACK ends in STACKER_JAM ("stacker") or ACCEPTOR_JAM ("acceptor") after
        STACKING, with no VEND_VALID, until clear_fault()."""
        self._jam = Status.STACKER_JAM if where == "stacker" else Status.ACCEPTOR_JAM

    def power_up_with_bill(self, where: str, value: int | None = None) -> None:
        """Restart with a bill caught inside: POWER_UP_BILL_IN_STACKER ("stacker": the note is
        counted in the cash box now) or POWER_UP_BILL_IN_ACCEPTOR ("acceptor": RESET returns
        it). `value` defaults to the note mid-cycle, else the smallest denomination."""
        if value is not None or self._note is None:
            self._note = value if value is not None else min(self.denominations.values())
            self._in_box = False
        self.power_cycle(Status.POWER_UP_BILL_IN_STACKER if where == "stacker"
                         else Status.POWER_UP_BILL_IN_ACCEPTOR)

    def fault(self, status: Status, data: bytes = b"") -> None:
        """A fault status held until clear_fault(), shown at once (after RESET while in a
        power-up state); a note in STACKING is finished into the box, one before is given
        back."""
        self._fault = (status, data)
        if self._step is not None and self._step.status in id003.POWER_UP_STATES:
            return
        if self._step is not None and self._step.status is Status.STACKING:
            self._to_stacker()
        self._give_back()
        self._run()

    def stacker_full(self) -> None:
        self.fault(Status.STACKER_FULL)

    def stacker_open(self) -> None:
        self.fault(Status.STACKER_OPEN)

    def cheat(self) -> None:
        self.fault(Status.CHEATED)

    def failure(self, code: int = 0xA2) -> None:
        self.fault(Status.FAILURE, bytes((code,)))

    def clear_fault(self) -> None:
        """The technician fixed it: back to IDLING/DISABLED (a stacker-jam note is found in
        the cash box)."""
        if self._jammed_note is not None:
            self.record.stacked.append(self._jammed_note)
            self._jammed_note = None
        self._fault = None

    def stuck(self, status: Status, seconds: float) -> None:
        """The next time the device is in the timed `status` (now, if it already is) it
        stays there `seconds` instead of its usual time (statuses held for the host, like
        ESCROW or VEND_VALID, are not timed and are left alone)."""
        self._tick()
        if (self._step is not None and self._step.status is status
                and self._step.duration is not None):
            self._step.duration = self.clock() - self._since + seconds
        else:
            self._stuck[status] = seconds
