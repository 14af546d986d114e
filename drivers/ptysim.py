"""A device simulator on the far side of a real pseudo-terminal, byte for byte.

The host opens `sim.link` with pyserial exactly as it opens `/dev/serial/by-id/...` on a
kiosk: `link` is a symlink to the slave side of the pty now in use (`pty_path`, a
`/dev/pts/N` set raw, 8N1), like a udev name. `unplug(seconds)` closes the pty and removes
the link; after `seconds` a new pty (a new N) appears behind the same link, like a
USB-serial adapter coming back, and `wait_plugged()` waits for it. What the host sees
meanwhile (pyserial 3.5, Linux): `read()` raises SerialException("device reports readiness
to read but returned no data ..."), `write()` raises SerialException("write failed: [Errno
5] Input/output error"), `in_waiting` raises a bare OSError(EIO), and opening the link
raises SerialException (errno 2) until the new pty is there.

The link lives in `link_dir`: the folder given to the constructor, or a temporary folder
made by start() and removed by stop(). stop() may be called any number of times; a
simulator that is never stopped is stopped and cleaned up when the interpreter exits (or
when it is garbage-collected after its thread ended), by a weakref.finalize. Nothing runs
in a process killed with SIGKILL, so a process that may be killed so should not own a
simulator: give it the link of one owned by a process that survives (tests/crash does).

One daemon thread serves the master side. By default each chunk the host sent goes to
`_on_data(chunk)` (the subclass's protocol) and the bytes it returns go back to the host;
a device that leads the conversation itself overrides `_serve_once` and uses `_read` and
`_to_host`. `_new_line()` is called for every new pty (a fresh decoder), `_replugged()`
when one comes back after an unplug (what a power cycle does to the device). An exception
in the protocol is logged and the line stays up: a simulator bug must not kill the line.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import tempfile
import termios
import threading
import time
import tty
import weakref
from typing import Self

log = logging.getLogger("kiosk.ptysim")


def open_raw_pty() -> tuple[int, int]:
    """A pty pair (master, slave) with the slave raw, 8 data bits, no parity, 1 stop bit:
    no echo and no line discipline, bytes pass as they were sent."""
    master, slave = os.openpty()
    try:
        tty.setraw(slave)
        attrs = termios.tcgetattr(slave)
        attrs[2] = (attrs[2] & ~(termios.CSIZE | termios.PARENB | termios.CSTOPB)) | termios.CS8
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
    except BaseException:
        os.close(master)
        os.close(slave)
        raise
    return master, slave


class _Line:
    """What a running simulator holds from the OS: the pty pair, the link and the temporary
    folder, with the events its thread obeys. Kept apart from the simulator so that the
    finalizer can release it without keeping the simulator alive."""

    def __init__(self, link: str, temp_dir: str, stop: threading.Event,
                 plugged: threading.Event) -> None:
        self.master = self.slave = -1
        self.link = link
        self.temp_dir = temp_dir                   # "" when the caller gave the folder
        self.stop = stop
        self.plugged = plugged
        self.thread: threading.Thread | None = None

    def close_pty(self) -> None:
        self.plugged.clear()
        if os.path.lexists(self.link):
            try:
                os.unlink(self.link)
            except FileNotFoundError:
                pass
        fds, (self.master, self.slave) = (self.master, self.slave), (-1, -1)
        for fd in fds:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError as exc:             # closed under us: nothing left to free
                    log.debug("closing pty fd %d: %s", fd, exc)


def _release(line: _Line, join_s: float) -> None:
    """Stop the thread, close the pty, remove the link and the temporary folder (once)."""
    line.stop.set()
    thread, line.thread = line.thread, None
    if thread is not None and thread is not threading.current_thread():
        thread.join(join_s)
    line.close_pty()
    if line.temp_dir:
        shutil.rmtree(line.temp_dir, ignore_errors=True)
        line.temp_dir = ""


class PtySimulator:
    """The base of the byte-exact device simulators (ID-003, ZVT, ESC/POS)."""

    link_name = "device"           # the symlink's name in link_dir
    temp_prefix = "ptysim-"        # the temporary folder's name starts with it
    thread_name = "pty-sim"
    what = "device"                # for the log: "simulated <what> failed"
    logger = log                   # a subclass logs under its device's name
    read_size = 4096
    poll_s = 0.05                  # the thread looks at stop / unplug this often
    unplug_wait_s = 2.0            # unplug() waits this long for the port to go
    join_s = 3.0                   # stop() waits this long for the thread

    def __init__(self, link_dir: str | None = None) -> None:
        self._given_dir = link_dir
        self.link_dir = link_dir or ""             # a temporary folder is made at start()
        self.link = os.path.join(link_dir, self.link_name) if link_dir else ""
        self.pty_path = ""                         # the /dev/pts/N behind the link now
        self._stop = threading.Event()
        self._plugged = threading.Event()
        self._unplug_for: float | None = None
        self._thread: threading.Thread | None = None
        self._line: _Line | None = None
        self._finalizer: weakref.finalize | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        if self._thread is not None:
            return self                            # already serving
        temp_dir = "" if self._given_dir else tempfile.mkdtemp(prefix=self.temp_prefix)
        if temp_dir:
            self.link_dir = temp_dir
        self.link = os.path.join(self.link_dir, self.link_name)
        self._stop.clear()
        self._unplug_for = None
        line = self._line = _Line(self.link, temp_dir, self._stop, self._plugged)
        self._finalizer = weakref.finalize(self, _release, line, self.join_s)
        try:
            self._open_pty()
            self._thread = line.thread = threading.Thread(
                target=self._serve, name=self.thread_name, daemon=True)
            self._thread.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop serving, close the pty, remove the link (and the temporary folder). Safe to
        call again, or without start()."""
        if self._finalizer is not None:
            self._finalizer()                      # runs _release once; later calls: nothing
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def _master(self) -> int:
        return self._line.master if self._line is not None else -1

    def _open_pty(self) -> None:
        assert self._line is not None, "start() first"
        master, slave = open_raw_pty()
        self._line.master, self._line.slave = master, slave
        self.pty_path = os.ttyname(slave)
        self._new_line()
        tmp = self.link + ".new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(self.pty_path, tmp)
        os.replace(tmp, self.link)                 # the name never points at nothing mid-swap
        self._plugged.set()

    def _close_pty(self) -> None:
        if self._line is not None:
            self._line.close_pty()
        else:
            self._plugged.clear()

    # ------------------------------------------------------------------ unplugging
    def unplug(self, seconds: float) -> None:
        """The port disappears now (returns once it is gone); a new pty appears behind the
        same link after `seconds`. `wait_plugged()` waits for it."""
        self._unplug_for = seconds
        deadline = time.monotonic() + self.unplug_wait_s
        while self._plugged.is_set() and self._thread is not None and time.monotonic() < deadline:
            time.sleep(0.01)

    def wait_plugged(self, timeout: float = 5.0) -> bool:
        return self._plugged.wait(timeout)

    def _unplugged_for(self, seconds: float) -> None:
        self._close_pty()
        if self._stop.wait(seconds):
            return
        self._replugged()
        self._unplug_for = None
        self._open_pty()

    # ------------------------------------------------------------------ the line
    def _serve(self) -> None:
        while not self._stop.is_set():
            if self._unplug_for is not None:
                self._unplugged_for(self._unplug_for)
                continue
            try:
                self._serve_once()
            except Exception:                      # a simulator bug must not kill the line
                self.logger.exception("simulated %s failed", self.what)

    def _serve_once(self) -> None:
        """One turn of the thread: what the host sent, answered."""
        chunk = self._read(self.poll_s)
        if chunk:
            self._to_host(self._on_data(chunk))

    def _read(self, timeout: float) -> bytes:
        """What the host sent within `timeout` (b"" if nothing)."""
        master = self._master
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(master, self.read_size)
        except OSError as exc:                     # no slave side open: nothing to read
            self.logger.debug("pty read: %s", exc)
            self._stop.wait(timeout)
            return b""

    def _to_host(self, data: bytes) -> None:
        if not data:
            return
        try:
            os.write(self._master, data)
        except OSError as exc:
            self.logger.debug("pty write: %s", exc)

    # ------------------------------------------------------------------ the device
    def _new_line(self) -> None:
        """A new pty is in place (start, replug): reset what belongs to the line."""

    def _replugged(self) -> None:
        """The pty comes back after an unplug: what that does to the device."""

    def _on_data(self, chunk: bytes) -> bytes:
        """Bytes from the host; returns the device's answer (b"" for none)."""
        return b""
