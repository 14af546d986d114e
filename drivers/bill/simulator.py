"""An ID-003 banknote acceptor on the far side of a real pty, byte for byte.

The host opens `sim.link` with pyserial (9600 8E1; parity means nothing on a pty) exactly as
it opens `/dev/serial/by-id/...` on a kiosk; the pty, the link, unplugging and cleaning up
are `drivers/ptysim.py`'s. After `unplug(seconds)` the device comes back in POWER_UP (or a
power-up with a bill), like an acceptor whose USB-serial adapter was pulled out and back.

The simulator's thread cuts frames with id003.Decoder (a frame with a bad CRC is ignored,
as a real device does) and answers each with `Id003Device.handle`, after `reply_delay`.
Line faults (`garbage`, `bad_crc_next`, `slow`, `latency`, `drop_replies`,
`corrupt_replies`, `unplug_at`, `lose_line_on`, `drop_line`, and the base's `unplug`) live
here; the device's own scenarios (jams, counterfeit, ...) are forwarded under the lock, so
customer actions are safe from any thread. `received` keeps the last host frames the device
took, each with the number of the line (pty) it came on, for tests that check what was sent.

Two kinds of late answer: `slow(s)` is a device that takes `s` to get to each frame (frames
queue behind each other, the state changes late too); `latency(s, jitter)` is a device that
acts on each frame at once and whose answer reaches the host `s` (+ up to `jitter`) later,
in order (a USB-serial adapter holding bytes back, a busy acceptor's late reply).

As a kiosk device it is the driver "id003-sim" (drivers/registry.py): the real ID-003
driver on this simulator's link, with `for_driver`'s notes.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterable

from ..ptysim import PtySimulator
from .device import Id003Device, Record, Timings
from .id003 import Command, Decoder, Frame, Status

log = logging.getLogger("kiosk.cash.sim")

PHP_NOTES = {0x61: 2000, 0x62: 5000, 0x63: 10000, 0x64: 20000, 0x65: 50000, 0x66: 100000}
# JCM country codes are the vendor's own (TerminalClient lists USD 01, CAD 08, RUB 27,
# INR 63, EUR E0, ... and no PHP). 0xF0 matches none of the known ones, so it cannot be
# mistaken for a real assignment; drivers are configured with the currency and should not
# rely on this byte.
COUNTRY_CODE_PHP = 0xF0
RECEIVED_KEPT = 5000                # host frames kept in `received`


def _reports(frame: Frame, reply: bytes, status: Status) -> bool:
    """`reply` answers a status request with `status`."""
    return frame.cmd == Command.STATUS_REQUEST and reply[2:3] == bytes((status,))


def default_codes(values: Iterable[int] = ()) -> dict[int, int]:
    """Escrow codes from 0x61 for note values in minor units, smallest first (PHP notes if
    none are given)."""
    ordered = sorted(set(values)) or sorted(PHP_NOTES.values())
    return {0x61 + i: value for i, value in enumerate(ordered)}


class Id003Simulator(PtySimulator):
    link_name = "acceptor"
    temp_prefix = "id003-"
    thread_name = "id003-sim"
    what = "ID-003 device"
    logger = log
    read_size = 512

    def __init__(self, denominations: dict[int, int] | None = None, currency_exponent: int = 2,
                 country_code: int = COUNTRY_CODE_PHP, link_dir: str | None = None,
                 reply_delay: float = 0.0, timings: Timings | None = None,
                 seed: int = 3) -> None:
        super().__init__(link_dir)
        self.device = Id003Device(denominations or PHP_NOTES, currency_exponent,
                                  country_code, timings=timings)
        self.reply_delay = reply_delay
        self.reply_jitter = 0.0
        self.decoder = Decoder()              # host frames; replaced with each new pty
        self.frames_handled = 0               # valid host frames (the host's ACK has no reply)
        self.line = 0                         # ptys so far: 1 at start, + 1 at each replug
        self.received: deque[tuple[int, Frame]] = deque(maxlen=RECEIVED_KEPT)   # (line, frame)
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._latency_rng = random.Random(seed)   # only the serving thread draws from it
        self._garbage = b""
        self._bad_crc_next = False
        self._latency = (0.0, 0.0)            # (seconds, jitter)
        self._outbox: deque[tuple[float, bytes]] = deque()   # (due, reply), in order
        self._keep_power = False              # the next replug is not a power cycle

    @classmethod
    def for_driver(cls, denominations: Iterable[int] = (), **_driver_options: object
                   ) -> Id003Simulator:
        """The device for a kiosk's ID-003 driver ("id003-sim"): its notes, from 0x61."""
        return cls(default_codes(denominations))

    # ------------------------------------------------------------------ serving
    def _new_line(self) -> None:
        self.decoder = Decoder()
        self.line += 1
        self._outbox.clear()                  # answers on their way are lost with the line

    def _replugged(self) -> None:
        with self._lock:
            if self._keep_power:              # only the line went: the device kept its state
                self._keep_power = False
                return
            self.device.power_cycle()

    def _serve_once(self) -> None:
        self._deliver_due()
        wait = self.poll_s
        if self._outbox:
            wait = min(wait, max(0.0, self._outbox[0][0] - time.monotonic()))
        chunk = self._read(wait)
        if chunk:
            self._on_data(chunk)

    def _on_data(self, chunk: bytes) -> bytes:
        for frame in self.decoder.feed(chunk):
            if self._unplug_for is not None:  # the line is going: the rest is lost
                break
            self._answer(frame)               # each answer is written as it is ready
        return b""

    def _reply(self, reply: bytes) -> None:
        """To the host now, or after the latency, never before an earlier reply."""
        seconds, jitter = self._latency
        if not reply or not (seconds or jitter or self._outbox):
            self._to_host(reply)
            return
        due = time.monotonic() + seconds + self._latency_rng.uniform(0.0, jitter)
        if self._outbox:
            due = max(due, self._outbox[-1][0])
        self._outbox.append((due, reply))

    def _deliver_due(self) -> None:
        now = time.monotonic()
        while self._outbox and self._outbox[0][0] <= now:
            self._to_host(self._outbox.popleft()[1])

    def _answer(self, frame: Frame) -> None:
        at = self._unplug_at
        if at is not None and at[2]:          # the host read that reply: pull the plug now
            self._unplug_at = None
            self._unplug_for = at[1]          # the serving loop unplugs; this frame is lost
            return
        lose = self._lose_on
        if lose is not None and frame.cmd == lose[0]:
            self._lose_on = None
            self._keep_power = not lose[2]
            self._unplug_for = lose[1]        # as above: this frame never reaches the device
            return
        delay = self.reply_delay
        if self.reply_jitter:
            delay += self._latency_rng.uniform(0.0, self.reply_jitter)
        if delay and self._stop.wait(delay):
            return
        with self._lock:
            self.received.append((self.line, frame))
            try:
                reply = self.device.handle(frame)
            except Exception:                 # a simulator bug must not kill the line
                log.exception("simulated ID-003 device failed on %r", frame)
                return
            if reply and self._bad_crc_next:
                reply = reply[:-1] + bytes((reply[-1] ^ 0xFF,))
                self._bad_crc_next = False
            if reply and self._garbage:
                reply, self._garbage = self._garbage + reply, b""
            reply = self._line_faulted(frame, reply or b"")
            self.frames_handled += 1
        self._reply(reply)
        if at is not None and _reports(frame, reply, at[0]):
            self._unplug_at = (at[0], at[1], True)

    def _line_faulted(self, frame: Frame, reply: bytes) -> bytes:
        fault = self._line_fault
        if fault is None or not reply:
            return reply
        kind, left, when = fault
        if when is not None and not _reports(frame, reply, when):
            return reply
        self._line_fault = (kind, left - 1, None) if left > 1 else None
        return b"" if kind == "drop" else reply[:-1] + bytes((reply[-1] ^ 0xFF,))

    # ------------------------------------------------------------------ line faults
    def garbage(self, n: int, data: bytes | None = None) -> None:
        """The next reply is preceded by `n` random bytes (or by `data`)."""
        with self._lock:
            self._garbage = data if data is not None else self._rng.randbytes(n)

    def bad_crc_next(self) -> None:
        """The next reply has a corrupted CRC."""
        with self._lock:
            self._bad_crc_next = True

    def slow(self, seconds: float, jitter: float = 0.0) -> None:
        """The device gets to each frame from now on `seconds` (plus a random 0..`jitter`)
        late, slow(0) to stop: frames sent meanwhile wait their turn, so their replies come
        later still (the host's ACK, which is not answered, delays the next reply too)."""
        self.reply_delay, self.reply_jitter = seconds, jitter

    def latency(self, seconds: float, jitter: float = 0.0) -> None:
        """Every reply from now on reaches the host `seconds` plus a random 0..`jitter` after
        its frame arrived (the device acts on the frame at once); replies keep their order.
        latency(0) to stop."""
        self._latency = (seconds, jitter)

    # Class defaults: a simulator starts with none of these faults armed.
    _line_fault: tuple[str, int, Status | None] | None = None   # (kind, replies, from status)
    _unplug_at: tuple[Status, float, bool] | None = None        # (status, seconds, seen)
    _lose_on: tuple[int, float, bool] | None = None             # (command, seconds, power)

    def drop_replies(self, n: int, when: Status | None = None) -> None:
        """The next `n` replies are lost on the line (the device did act on the frames):
        from now, or from the first reply reporting the status `when`."""
        with self._lock:
            self._line_fault = ("drop", n, when)

    def corrupt_replies(self, n: int, when: Status | None = None) -> None:
        """Like drop_replies, but the `n` replies arrive with a broken CRC."""
        with self._lock:
            self._line_fault = ("corrupt", n, when)

    def unplug_at(self, status: Status, seconds: float) -> None:
        """Once the host has a reply reporting `status`, unplug for `seconds` as its next
        frame arrives (that frame is lost; the device power-cycles, as with unplug())."""
        self._unplug_at = (status, seconds, False)

    def lose_line_on(self, command: int, seconds: float, power_cycle: bool = False) -> None:
        """The line drops for `seconds` as the host's next `command` frame arrives: that
        frame never reaches the device. The device power-cycles only with `power_cycle`
        (else it is the USB-serial adapter that dropped out, the acceptor kept running)."""
        self._lose_on = (command, seconds, power_cycle)

    def drop_line(self, seconds: float) -> None:
        """The USB-serial adapter drops out now for `seconds` (like `unplug`), but the
        acceptor, on its own supply, keeps its state: no power cycle when it comes back."""
        self._keep_power = True
        self.unplug(seconds)

    def sent_on(self, line: int) -> list[int]:
        """The commands the device took on that line (pty), in order."""
        with self._lock:
            return [frame.cmd for n, frame in self.received if n == line]

    # ------------------------------------------------------------------ the device
    @property
    def record(self) -> Record:
        return self.device.record

    def status(self) -> Status:
        with self._lock:
            return self.device.status()[0]

    def insert(self, value: int) -> bool:
        with self._lock:
            return self.device.insert(value)

    def counterfeit(self, reason: int = 0x72) -> None:
        with self._lock:
            self.device.counterfeit(reason)

    def give_back(self) -> bool:
        with self._lock:
            return self.device.give_back()

    def hold_escrow(self, seconds: float) -> None:
        with self._lock:
            self.device.hold_escrow(seconds)

    def jam_after_escrow(self, where: str = "stacker") -> None:
        with self._lock:
            self.device.jam_after_escrow(where)

    def power_up_with_bill(self, where: str, value: int | None = None) -> None:
        with self._lock:
            self.device.power_up_with_bill(where, value)

    def stacker_full(self) -> None:
        with self._lock:
            self.device.stacker_full()

    def stacker_open(self) -> None:
        with self._lock:
            self.device.stacker_open()

    def cheat(self) -> None:
        with self._lock:
            self.device.cheat()

    def failure(self, code: int = 0xA2) -> None:
        with self._lock:
            self.device.failure(code)

    def clear_fault(self) -> None:
        with self._lock:
            self.device.clear_fault()

    def stuck(self, status: Status, seconds: float) -> None:
        with self._lock:
            self.device.stuck(status, seconds)
