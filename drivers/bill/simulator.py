"""An ID-003 banknote acceptor on the far side of a real pty, byte for byte.

The host opens `sim.link` with pyserial (9600 8E1; parity means nothing on a pty) exactly as
it opens `/dev/serial/by-id/...` on a kiosk. `link` is a symlink to the current
`/dev/pts/N`, like a udev name: `unplug(seconds)` closes the pty and removes the link, and
after `seconds` a new pty (a new N) appears behind the same link, the device in POWER_UP,
like a USB-serial adapter coming back. What the host sees meanwhile (pyserial 3.5, Linux):
`read()` raises SerialException("device reports readiness to read but returned no data
..."), `write()` raises SerialException("write failed: [Errno 5] Input/output error"),
`in_waiting` raises a bare OSError(EIO), and opening the link raises SerialException
(errno 2) until the new pty is there; then opening the link again works.

A daemon thread reads the master, cuts frames with id003.Decoder (a frame with a bad CRC is
ignored, as a real device does) and answers each with `Id003Device.handle`, after
`reply_delay`. Line faults (`garbage`, `bad_crc_next`, `slow`, `unplug`) live here; the
device's own scenarios (jams, counterfeit, ...) are forwarded under the lock, so customer
actions are safe from any thread.
"""

from __future__ import annotations

import logging
import os
import random
import select
import shutil
import tempfile
import threading
import time
import tty
from collections.abc import Iterable

from .device import Id003Device, Record, Timings
from .id003 import Decoder, Frame, Status

log = logging.getLogger("kiosk.cash.sim")

PHP_NOTES = {0x61: 2000, 0x62: 5000, 0x63: 10000, 0x64: 20000, 0x65: 50000, 0x66: 100000}
# JCM country codes are the vendor's own (TerminalClient lists USD 01, CAD 08, RUB 27,
# INR 63, EUR E0, ... and no PHP). 0xF0 matches none of the known ones, so it cannot be
# mistaken for a real assignment; drivers are configured with the currency and should not
# rely on this byte.
COUNTRY_CODE_PHP = 0xF0


def default_codes(values: Iterable[int] = ()) -> dict[int, int]:
    """Escrow codes from 0x61 for note values in minor units, smallest first (PHP notes if
    none are given)."""
    ordered = sorted(set(values)) or sorted(PHP_NOTES.values())
    return {0x61 + i: value for i, value in enumerate(ordered)}


class Id003Simulator:
    def __init__(self, denominations: dict[int, int] | None = None, currency_exponent: int = 2,
                 country_code: int = COUNTRY_CODE_PHP, link_dir: str | None = None,
                 reply_delay: float = 0.0, timings: Timings | None = None,
                 seed: int = 3) -> None:
        self.device = Id003Device(denominations or PHP_NOTES, currency_exponent,
                                  country_code, timings=timings)
        self._own_dir = link_dir is None
        self.link_dir = link_dir or tempfile.mkdtemp(prefix="id003-")
        self.link = os.path.join(self.link_dir, "acceptor")
        self.pty_path = ""                    # the /dev/pts/N behind the link now
        self.reply_delay = reply_delay
        self.decoder = Decoder()              # host frames; replaced with each new pty
        self.frames_handled = 0               # valid host frames (the host's ACK has no reply)
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._garbage = b""
        self._bad_crc_next = False
        self._master = self._slave = -1
        self._unplug_for: float | None = None
        self._plugged = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Id003Simulator:
        self._open_pty()
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="id003-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)
            self._thread = None
        self._close_pty()
        if self._own_dir:
            shutil.rmtree(self.link_dir, ignore_errors=True)

    def __enter__(self) -> Id003Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)                     # no echo, no line discipline: bytes as sent
        self._master, self._slave = master, slave
        self.pty_path = os.ttyname(slave)
        self.decoder = Decoder()
        tmp = self.link + ".new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(self.pty_path, tmp)
        os.replace(tmp, self.link)            # the name never points at nothing mid-swap
        self._plugged.set()

    def _close_pty(self) -> None:
        self._plugged.clear()
        if os.path.lexists(self.link):
            os.unlink(self.link)
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    # ------------------------------------------------------------------ serving
    def _serve(self) -> None:
        while not self._stop.is_set():
            if self._unplug_for is not None:
                self._unplugged_for(self._unplug_for)
                continue
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(self._master, 512)
            except OSError as exc:            # no slave side open: nothing to read
                log.debug("pty read: %s", exc)
                self._stop.wait(0.05)
                continue
            for frame in self.decoder.feed(chunk):
                self._answer(frame)

    def _unplugged_for(self, seconds: float) -> None:
        self._close_pty()
        if self._stop.wait(seconds):
            return
        with self._lock:
            self.device.power_cycle()
            self._unplug_for = None
        self._open_pty()

    def _answer(self, frame: Frame) -> None:
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
            self.frames_handled += 1
        if reply:
            try:
                os.write(self._master, reply)
            except OSError as exc:
                log.debug("pty write: %s", exc)

    # ------------------------------------------------------------------ line faults
    def unplug(self, seconds: float) -> None:
        """The port disappears now (returns once it is gone); a new pty appears behind the
        same link after `seconds`, the device power-cycled (POWER_UP, or a power-up with a
        bill if a note was mid-cycle). `wait_plugged()` waits for it."""
        self._unplug_for = seconds
        deadline = time.monotonic() + 2.0
        while self._plugged.is_set() and self._thread is not None and time.monotonic() < deadline:
            time.sleep(0.01)

    def wait_plugged(self, timeout: float = 5.0) -> bool:
        return self._plugged.wait(timeout)

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
