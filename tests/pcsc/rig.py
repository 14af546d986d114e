"""A private pcscd with one vpcd reader, for tests against the real PC/SC stack.

pcscd always listens on /run/pcscd/pcscd.comm; it runs here in its own mount namespace
with a temporary directory bound over /run/pcscd, so a system pcscd (or another test run)
is never touched. Clients find it through PCSCLITE_CSOCK_NAME = `rig.sock`, which
pcsc-lite reads once, at the first PC/SC call of the process: set it before any pyscard
call (tests/pcsc/conftest.py does, and is the only place that does). `restart()` keeps the
same socket path for that reason.

The reader's vpcd driver listens on `rig.port` (slot 0) and `rig.port + 1` (slot 1); a
`VpcdCard(profile, port=rig.port)` is a card pushed into `rig.reader_name`.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

VPCD_DRIVER = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port_pair() -> int:
    """A port p with p and p + 1 free, below the ephemeral range (32768+)."""
    for _ in range(200):
        port = random.randrange(20000, 32000, 2)
        if _bindable(port) and _bindable(port + 1):
            return port
    raise RuntimeError("no free pair of TCP ports for vpcd")


class PcscdRig:
    def __init__(self, base: Path | None = None, friendly_name: str = "Kiosk Test PCD",
                 debug: bool = False) -> None:
        self.base = base or Path(tempfile.mkdtemp(prefix="kiosk-pcscd-"))
        self.run_dir = self.base / "run"
        self.conf_dir = self.base / "conf"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.conf_dir.mkdir(exist_ok=True)
        self.log_path = self.base / "pcscd.log"
        self.friendly_name = friendly_name
        self.debug = debug
        self.port = free_port_pair()
        self.reader_name = f"{friendly_name} 00 00"       # slot 0; slot 1 is "... 00 01"
        self.sock = str(self.run_dir / "pcscd.comm")
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_once = False

    def _write_conf(self) -> None:
        (self.conf_dir / "vpcd").write_text(
            f'FRIENDLYNAME "{self.friendly_name}"\n'
            f"DEVICENAME   /dev/null:0x{self.port:04X}\n"
            f"LIBPATH      {VPCD_DRIVER}\n"
            f"CHANNELID    0x{self.port:04X}\n")

    def start(self, timeout: float = 10.0) -> None:
        """Start pcscd and wait until its reader is listed (needs PCSCLITE_CSOCK_NAME set)."""
        if self.proc is not None:
            return
        if os.environ.get("PCSCLITE_CSOCK_NAME") != self.sock:
            raise RuntimeError(f"set PCSCLITE_CSOCK_NAME={self.sock} before any PC/SC call")
        if not _bindable(self.port) or not _bindable(self.port + 1):
            if self.started_once:          # cards and tests already use this port: keep it
                raise RuntimeError(f"vpcd ports {self.port}/{self.port + 1} are taken")
            self.port = free_port_pair()
        self.started_once = True
        Path("/run/pcscd").mkdir(parents=True, exist_ok=True)
        self._write_conf()
        pcscd = f"exec pcscd -f {'-d ' if self.debug else ''}-c {self.conf_dir}"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["unshare", "-m", "--propagation", "private", "sh", "-c",
                 f"mount --bind {self.run_dir} /run/pcscd && {pcscd}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        try:
            self._wait_for_reader(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_for_reader(self, timeout: float) -> None:
        from smartcard import scard
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"pcscd exited with {self.proc.returncode}: {self.log_tail()}")
            if os.path.exists(self.sock):
                hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
                if hr == scard.SCARD_S_SUCCESS:
                    hr, readers = scard.SCardListReaders(ctx, [])
                    scard.SCardReleaseContext(ctx)
                    if hr == scard.SCARD_S_SUCCESS and self.reader_name in readers:
                        return
            time.sleep(0.05)
        raise TimeoutError(f"pcscd did not list {self.reader_name!r}: {self.log_tail()}")

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the pcscd started here (its own process group), nothing else."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)

    def restart(self, timeout: float = 10.0) -> None:
        self.stop()
        self.start(timeout)

    def wait_for_state(self, want: Callable[[int], bool], timeout: float = 3.0,
                       reader: str | None = None) -> tuple[int, bytes]:
        """Wait until the reader's event state satisfies `want`; return (state, ATR).

        E.g. `rig.wait_for_state(lambda s: bool(s & 0x10))` (SCARD_STATE_EMPTY) after pulling
        a card: pcscd notices a removal only at its next poll (up to 400 ms), and a card
        pushed in before that is not seen as a new card.
        """
        from smartcard import scard
        name = reader or self.reader_name
        hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hr != scard.SCARD_S_SUCCESS:
            raise RuntimeError(f"SCardEstablishContext: {hr & 0xFFFFFFFF:#010x}")
        try:
            hr, states = scard.SCardGetStatusChange(ctx, 0, [(name, scard.SCARD_STATE_UNAWARE)])
            state, atr = states[0][1], bytes(states[0][2])
            deadline = time.monotonic() + timeout
            while not want(state):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{name}: state stayed {state:#010x}")
                hr, states = scard.SCardGetStatusChange(ctx, int(left * 1000) + 1,
                                                        [(name, state)])
                if hr == scard.SCARD_S_SUCCESS:
                    state, atr = states[0][1], bytes(states[0][2])
                elif hr & 0xFFFFFFFF != scard.SCARD_E_TIMEOUT & 0xFFFFFFFF:
                    raise RuntimeError(f"SCardGetStatusChange: {hr & 0xFFFFFFFF:#010x}")
            return state, atr
        finally:
            scard.SCardReleaseContext(ctx)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
