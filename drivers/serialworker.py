"""The thread that owns a serial device: open the port, bring the device up, serve it until
the line fails, close, wait, open again, until the driver stops.

A driver derives from SerialWorker and fills in the steps of `_run`'s loop:

    _open()            the port, with the device's line settings (`_open_port`)
    _connect()         bring the device up (register, reset, ...); raise if it will not
    _serve()           work until the line fails (raise) or the driver stops (return)
    _port_gone(exc)    the port failed or vanished (PortGone)
    _down(detail)      the device failed some other way (NotAnswering, or a bug: logged)
    _backing_off(s)    wait before the next try: 0.2 s, doubled after each failed try up to
                       5 s, back to 0.2 s once a device came up (`_connect` returned)
    _stopped()         the thread is ending

`_io(op)` runs one pyserial call and turns its failures (SerialException, OSError,
termios.error) into PortGone, so a vanished USB-serial adapter is one exception type for the
loop. `_start_worker()` starts the daemon thread; `_stop_worker()` sets the stop event,
`_interrupt()`s the thread and waits up to `join_s` (it blocks: a coroutine calls it through
asyncio.to_thread). pyserial is imported only when a port is opened: a kiosk without serial
devices never loads it.
"""

from __future__ import annotations

import logging
import termios
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class PortGone(Exception):
    """The serial port failed or vanished (or the driver is stopping)."""


class NotAnswering(Exception):
    """The device does not take frames, or refuses to work."""


def _serial_errors() -> tuple[type[BaseException], ...]:
    import serial  # imported here: only kiosks with a serial device need it
    return (serial.SerialException, OSError, termios.error)


class SerialWorker:
    thread_name = "serial"
    what = "serial device"          # for the log: "<what> loop failed; restarting it"
    logger = logging.getLogger("kiosk")
    backoff_first_s = 0.2
    backoff_max_s = 5.0
    join_s = 5.0

    def __init__(self, port: str) -> None:
        self.port = port
        self._serial: Any = None
        self._stop = threading.Event()
        self._wake = threading.Event()   # work for the thread: do not wait out a pause
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ the thread
    def _start_worker(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def _stop_worker(self) -> None:
        """Ask the thread to end and wait for it (up to `join_s`). Blocking."""
        self._stop.set()
        self._interrupt()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.join_s)

    def _interrupt(self) -> None:
        """Wake the thread from whatever it waits on, to see the stop."""
        self._wake.set()

    def _running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ the port
    def _open_port(self, **settings: Any) -> None:
        import serial
        # ValueError: settings the port refuses
        errors: tuple[type[BaseException], ...] = (*_serial_errors(), ValueError)
        try:
            self._serial = serial.Serial(self.port, **settings)
        except errors as exc:
            raise PortGone(str(exc)) from None

    def _close(self) -> None:
        s, self._serial = self._serial, None
        if s is not None:
            try:
                s.close()
            except Exception:   # noqa: BLE001 - closing a vanished port may fail: it is gone
                pass

    def _io(self, op: Callable[[], T]) -> T:
        """One pyserial call; a failing or vanished port is PortGone."""
        try:
            return op()
        except _serial_errors() as exc:
            raise PortGone(str(exc)) from None

    # ------------------------------------------------------------------ the loop
    def _run(self) -> None:
        backoff = self.backoff_first_s
        while not self._stop.is_set():
            try:
                self._open()
                self._connect()
                backoff = self.backoff_first_s
                self._serve()
            except PortGone as exc:
                self._port_gone(exc)
            except NotAnswering as exc:
                self._down(str(exc))
            except Exception:   # a bug must not end the device for good
                self.logger.exception("%s loop failed; restarting it", self.what)
                self._down("driver error")
            finally:
                self._close()
            if not self._stop.is_set():
                self._backing_off(backoff)
            backoff = min(backoff * 2, self.backoff_max_s)
        self._stopped()

    def _open(self) -> None:
        raise NotImplementedError

    def _connect(self) -> None:
        """Bring the device up once the port is open (default: nothing to do)."""

    def _serve(self) -> None:
        raise NotImplementedError

    def _port_gone(self, exc: PortGone) -> None:
        self._down(f"port {self.port} unavailable ({exc})")

    def _down(self, detail: str) -> None:
        """The device is out of service for `detail` (the loop tries again)."""

    def _backing_off(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _stopped(self) -> None:
        """The thread is ending (after the port was closed)."""
