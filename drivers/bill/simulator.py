"""An ID-003 banknote acceptor on the far side of a real pty, byte for byte.

The host opens `sim.link` with pyserial (9600 8E1; parity means nothing on a pty) exactly as
it opens `/dev/serial/by-id/...` on a kiosk; the pty, the link, unplugging and cleaning up
are `drivers/ptysim.py`'s. After `unplug(seconds)` the device comes back in POWER_UP (or a
power-up with a bill), like an acceptor whose USB-serial adapter was pulled out and back.

The simulator's thread cuts frames with id003.Decoder (a frame with a bad CRC is ignored,
as a real device does) and answers each with `Id003Device.handle`, after `reply_delay`.
Line faults (`garbage`, `bad_crc_next`, `slow`, `drop_replies`, `corrupt_replies`,
`unplug_at`, and the base's `unplug`) live here; the device's own
scenarios (jams, counterfeit, ...) are forwarded under the lock, so customer actions are
safe from any thread. As a kiosk device it is the driver "id003-sim" (drivers/registry.py):
the real ID-003 driver on this simulator's link, with `for_driver`'s notes.
"""

from __future__ import annotations

import logging
import random
import threading
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
        self.decoder = Decoder()              # host frames; replaced with each new pty
        self.frames_handled = 0               # valid host frames (the host's ACK has no reply)
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._garbage = b""
        self._bad_crc_next = False

    @classmethod
    def for_driver(cls, denominations: Iterable[int] = (), **_driver_options: object
                   ) -> Id003Simulator:
        """The device for a kiosk's ID-003 driver ("id003-sim"): its notes, from 0x61."""
        return cls(default_codes(denominations))

    # ------------------------------------------------------------------ serving
    def _new_line(self) -> None:
        self.decoder = Decoder()

    def _replugged(self) -> None:
        with self._lock:
            self.device.power_cycle()

    def _on_data(self, chunk: bytes) -> bytes:
        for frame in self.decoder.feed(chunk):
            self._answer(frame)               # each answer is written as it is ready
        return b""

    def _answer(self, frame: Frame) -> None:
        at = self._unplug_at
        if at is not None and at[2]:          # the host read that reply: pull the plug now
            self._unplug_at = None
            self._unplug_for = at[1]          # the serving loop unplugs; this frame is lost
            return
        if self.reply_delay and self._stop.wait(self.reply_delay):
            return
        with self._lock:
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
        self._to_host(reply)
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

    def slow(self, seconds: float) -> None:
        """Every reply from now on comes `seconds` late (0 to stop)."""
        self.reply_delay = seconds

    # Class defaults: a simulator starts with none of these faults armed.
    _line_fault: tuple[str, int, Status | None] | None = None   # (kind, replies, from status)
    _unplug_at: tuple[Status, float, bool] | None = None        # (status, seconds, seen)

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
