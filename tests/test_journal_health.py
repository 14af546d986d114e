"""Out of service cleanly when the journal cannot be written; the cash box's state reaches a
running kiosk within a second and holds across a restart.

Real parts: the runtime with its simulators; the disk threshold against the real free
space of the test's file system (set above it); a real SQLite "database or disk is full"
(the journal's page count capped); `kiosk cashbox remove` from another process.
"""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from drivers.simulated import SimulatedBillAcceptor
from kiosk import disk
from kiosk import events as ev
from kiosk.config import Settings, load
from kiosk.engine import Phase
from kiosk.journal import Journal
from kiosk.runtime import Runtime
from tests.test_runtime import assert_balanced, choose, closed, insert, make_devices, row, until

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return replace(load(data_dir=tmp_path), query_interval_s=0.01, backend_timeout_s=1)


async def started(settings: Settings) -> Runtime:
    rt = Runtime(settings, devices=make_devices(settings))
    await rt.start()
    return rt


async def test_low_disk_stops_selling_before_money_is_taken(settings: Settings) -> None:
    free_mb = disk.free_bytes(settings.data_dir) // disk.MB
    rt = await started(replace(settings, min_free_mb=free_mb + 1024))
    try:
        await until(lambda: rt.journal_down is not None, "the disk check")
        assert "disk low" in rt.journal_down
        assert not rt.state.can_sell and rt.state.methods == ()
        cash: SimulatedBillAcceptor = rt.devices["cash"]
        for e in (ev.Start(), ev.NumberEntered("09171234567"), ev.ConfirmNumber(True)):
            rt.post(e)
        await until(lambda: rt.state.offered is not None, "the number checked")
        rt.post(ev.ChooseProduct("globe-load", 5000))
        rt.post(ev.ChoosePayment("cash"))
        assert rt.state.phase is not Phase.PAY_CASH and not cash.enabled
        # Room again: selling resumes by itself.
        rt.settings = replace(rt.settings, min_free_mb=1)
        await until(lambda: rt.journal_down is None and rt.state.can_sell, "selling again",
                    timeout=10)
    finally:
        await rt.stop()


async def test_a_failing_journal_write_puts_the_kiosk_out_of_service(
        settings: Settings) -> None:
    """SQLite refuses every write in the middle of a cash payment: the kiosk stops selling
    and disables the acceptor, and the note in the acceptor is not stacked. Once the journal
    can be written again, selling resumes and the payment resolves with the customer's money
    intact."""
    rt = await started(settings)
    cash: SimulatedBillAcceptor = rt.devices["cash"]
    try:
        ref = await choose(rt, "globe-load", 10000, "cash")
        await insert(rt, 5000)
        for db in (rt.journal.db, rt.gate._j().db):
            db.execute("PRAGMA query_only = ON")        # every write refused from now
        assert cash.insert(2000)
        await until(lambda: rt.journal_down is not None, "out of service")
        assert "journal write failed" in rt.journal_down
        assert not rt.state.can_sell and not cash.enabled
        assert sum(cash.record.stacked) == 5000 and row(rt, ref).paid == 5000
        for db in (rt.journal.db, rt.gate._j().db):
            db.execute("PRAGMA query_only = OFF")
        await until(lambda: rt.journal_down is None and rt.state.can_sell,
                    "the journal writable again", timeout=10)
        rt.post(ev.Cancel())
        await until(closed(rt, ref), "the payment closed")
        r = row(rt, ref)
        assert_balanced(r)
        assert r.paid == 5000 == sum(cash.record.stacked)    # the 2000 was never stacked
    finally:
        await rt.stop()


def test_full_disk_messages_name_the_cause(tmp_path: Path) -> None:
    assert disk.is_full(sqlite3.OperationalError("database or disk is full"))
    assert disk.is_full(OSError(errno.ENOSPC, "No space left on device"))
    assert not disk.is_full(sqlite3.OperationalError("database is locked"))
    text = disk.full_message(tmp_path / "journal.sqlite3", OSError(errno.ENOSPC, "x"))
    assert "the disk is full" in text and "MB free" in text


def test_start_on_a_full_disk_is_one_line(tmp_path: Path) -> None:
    """A real full file system (a 1 MB tmpfs): `kiosk run` says so and exits 65."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        fd = os.open(mnt / "filler", os.O_CREAT | os.O_WRONLY)
        try:
            while True:
                os.write(fd, b"\0" * 512)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)
        run = subprocess.run([sys.executable, "-m", "kiosk.cli", "run", "--headless",
                              "--exit-when-settled", "--data-dir", str(mnt / "data")],
                             cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
        assert run.returncode == 65, run.stderr
        [line] = run.stderr.strip().splitlines()
        assert "the disk is full" in line or "No space left" in line
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def cashbox(settings: Settings, action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiosk.cli", "cashbox", action, "--by", "tech",
                           "--data-dir", str(settings.data_dir)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ}, check=False)


async def test_cash_box_removal_reaches_the_running_kiosk_within_a_second(
        settings: Settings) -> None:
    rt = await started(settings)
    try:
        await until(lambda: rt.state.device_ok("cash"), "the acceptor ready")
        done = await asyncio.to_thread(cashbox, settings, "remove")
        assert done.returncode == 0, done.stderr
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await until(lambda: not rt.state.device_ok("cash"), "cash off", timeout=3)
        assert loop.time() - t0 < 1.0
        # The acceptor saying it is fine changes nothing while the box is out.
        rt.post(ev.DeviceStatus("cash", True))
        assert not rt.state.device_ok("cash")
        assert "cash" not in rt.state.methods
        done = await asyncio.to_thread(cashbox, settings, "insert")
        assert done.returncode == 0
        await until(lambda: rt.state.device_ok("cash"), "cash back", timeout=3)
    finally:
        await rt.stop()


async def test_no_note_is_taken_while_the_box_is_out_also_after_a_restart(
        settings: Settings) -> None:
    rt = await started(settings)
    try:
        ref = await choose(rt, "globe-load", 10000, "cash")
        cash: SimulatedBillAcceptor = rt.devices["cash"]
        await until(lambda: cash.enabled, "the acceptor enabled")
        other = Journal(settings.journal_path)          # as `kiosk cashbox remove` does
        other.append(None, ev.CashBoxRemoved("tech"))
        other.close()
        await until(lambda: not rt.state.device_ok("cash"), "cash off", timeout=3)
        # A note that reaches escrow now (the acceptor was enabled before) goes back.
        if cash.enabled:
            assert cash.insert(5000)
            await until(lambda: cash.escrow is None, "the note decided")
        assert row(rt, ref).paid == 0
    finally:
        await rt.stop()
    again = await started(settings)
    try:
        again.post(ev.DeviceStatus("cash", True))      # the acceptor reports ready
        await asyncio.sleep(0.6)
        assert not again.state.device_ok("cash") and "cash" not in again.state.methods
    finally:
        await again.stop()
