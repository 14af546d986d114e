"""The ESC/POS driver against the byte-exact printer simulator, through a real pty.

What the simulator recorded on its paper is the truth: a receipt the driver says it printed
is there, line for line, with its QR data and a cut; a receipt the driver refused (paper
out, cover open, printer not answering) left no paper at all.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from drivers import registry
from drivers.base import DeviceGone, DeviceTimeout, PrinterError
from drivers.printer.escpos import EscposPrinter, PrinterTimeout, layout
from kiosk import events as ev
from kiosk import receipts
from kiosk.config import DEFAULT_CONFIG, load_catalog
from kiosk.engine import Outcome, Txn
from tests.events import EventQueue


class Harness(EventQueue):
    def __init__(self, **opts: Any) -> None:
        super().__init__()
        # The real driver on the printer simulator's pty: the registry's "escpos-sim".
        self.printer = registry.create("printer", "escpos-sim",
                                       **{"poll_s": 0.1, "status_timeout_s": 0.3, **opts})
        self.sim = self.printer.simulator

    async def start(self) -> Harness:
        await self.printer.start(self.put)
        await self.expect(ev.DeviceStatus, ok=True, detail="ready")
        return self

    def statuses(self) -> list[tuple[bool, str]]:
        self.seen += self.drain()
        return [(e.ok, e.detail) for e in self.seen if isinstance(e, ev.DeviceStatus)]


@pytest.fixture
async def h():
    harness = await Harness().start()
    yield harness
    await harness.printer.stop()


def a_receipt(**txn: Any) -> receipts.Receipt:
    catalog = load_catalog(DEFAULT_CONFIG.parent / "catalog.toml")
    t = Txn(**{"msisdn": "09171234567", "operator": "globe", "product_id": "globe-load",
               "amount": 10000, "method": "cash", "ref": "K0001-000042", "paid": 10000,
               "credited": 10000, "operator_ref": "OP-778899", "outcome": Outcome.SUCCESS,
               **txn})
    return receipts.build(t, catalog, kiosk_id="K0001", site="Cubao MRT station, Quezon City",
                          support="Call 8-700 or support@example.invalid", tz="Asia/Manila",
                          now=1_750_000_000)


async def test_a_kiosk_receipt_is_printed_exactly_with_its_qr_and_a_cut(h):
    r = a_receipt()
    await h.printer.print_receipt(r.lines, r.qr)
    (paper,) = h.sim.receipts
    assert paper.lines == layout(r.lines, 42) + [""]      # a blank line before the QR
    assert paper.qr == [r.qr] == ["TOPUP:K0001-000042"]
    assert paper.cut and paper.feed_lines > 0
    head = paper.styles[0]
    assert (paper.lines[0], head.align, head.bold) == ("PREPAID TOP-UP", "center", True)
    assert all(s.align == "left" and not s.bold for s in paper.styles[1:])
    (sym,) = paper.symbols
    assert (sym.ec, sym.size, sym.model, sym.align) == ("M", 6, 2, "center")
    assert h.sim.unknown == 0 and h.sim.printout.hard_wraps == 0
    assert h.printer.paper() == "ok" and h.printer.diagnostics()["printed"] == 1


async def test_a_voucher_receipt_wraps_its_long_lines_at_the_paper_width():
    h = await Harness(width=32).start()
    try:
        r = a_receipt(outcome=Outcome.FAILED_VOUCHER, credited=0, voucher=10000,
                      voucher_code="1234567890123456")
        long_lines = [line for line in r.lines if len(line) > 32]
        assert long_lines, "the vector must have lines longer than the paper"
        await h.printer.print_receipt(r.lines + ["w" * 70], r.qr)
        (paper,) = h.sim.receipts
        assert paper.lines[:-1] == layout(r.lines + ["w" * 70], 32)
        assert max(len(line) for line in paper.lines) <= 32
        assert paper.lines[-4:-1] == ["w" * 32, "w" * 32, "w" * 6]
        assert h.sim.printout.hard_wraps == 0              # we wrapped, not the printer
        # Wrapping only moved words to the next line: the text reads the same.
        assert " ".join(paper.lines[:-4]).split() == " ".join(r.lines).split()
        assert "Voucher: 1234 5678 9012 3456" in paper.lines
    finally:
        await h.printer.stop()


async def test_non_ascii_text_arrives_through_code_pages(h):
    await h.printer.print_receipt(["Reçu", "Café 5 € – Straße", "PHP or ₱"], None)
    # python-escpos switches pages (ESC t) per character; ₱ is in none of them: "?".
    assert h.sim.receipts[0].lines == ["Reçu", "Café 5 € – Straße", "PHP or ?"]


async def test_paper_near_end_still_prints_and_tells_the_technician_once(h):
    h.sim.paper = "near_end"
    await h.printer.print_receipt(["A", "b"], "Q1")
    await h.expect(ev.DeviceStatus, ok=True, detail="paper near end")
    await h.printer.print_receipt(["A", "c"], "Q2")
    await asyncio.sleep(0.35)                              # a few idle polls
    assert h.printer.paper() == "near_end"
    assert [r.qr for r in h.sim.receipts] == [["Q1"], ["Q2"]]
    assert h.statuses().count((True, "paper near end")) == 1
    h.sim.paper = "ok"                                     # a new roll
    await h.expect(ev.DeviceStatus, ok=True, detail="ready")


async def test_paper_out_refuses_the_receipt_and_prints_nothing(h):
    h.sim.paper = "out"
    with pytest.raises(PrinterError, match="paper out"):
        await h.printer.print_receipt(["A", "b"], "Q")
    assert h.sim.receipts == [] and h.sim.partial.empty
    assert h.sim.status_requests[-3:] == [1, 2, 4]
    assert h.printer.paper() == "out"
    await h.expect(ev.DeviceStatus, ok=False, detail="paper out")
    h.sim.paper = "ok"
    await h.expect(ev.DeviceStatus, ok=True, detail="ready")   # the idle poll sees it
    await h.printer.print_receipt(["A", "b"], "Q")
    assert [r.lines[:2] for r in h.sim.receipts] == [["A", "b"]]


async def test_cover_open_refuses_the_receipt(h):
    h.sim.cover_open = True
    with pytest.raises(PrinterError, match="cover open"):
        await h.printer.print_receipt(["A"], None)
    assert h.sim.receipts == [] and h.sim.partial.empty
    await h.expect(ev.DeviceStatus, ok=False, detail="cover open")
    h.sim.cover_open = False
    await h.expect(ev.DeviceStatus, ok=True, detail="ready")


async def test_paper_running_out_mid_receipt_is_an_error_and_the_stub_is_torn_off(h):
    r = a_receipt()
    h.sim.run_out_after(5)
    with pytest.raises(PrinterError, match="paper out"):
        await h.printer.print_receipt(r.lines, r.qr)
    assert h.sim.receipts == []                            # never cut
    assert h.sim.partial.lines == layout(r.lines, 42)[:5] and h.sim.partial.qr == []
    assert h.printer.paper() == "out"
    h.sim.paper = "ok"                                     # reloaded: the stub is torn off
    (stub,) = h.sim.receipts
    assert not stub.cut and len(stub.lines) == 5
    await h.printer.print_receipt(r.lines, r.qr)
    assert h.sim.receipts[-1].cut and h.sim.receipts[-1].qr == [r.qr]


async def test_unplugged_port_is_device_gone_then_reconnects(h):
    h.sim.unplug(0.6)
    with pytest.raises(DeviceGone):
        await h.printer.print_receipt(["A"], None)
    await h.expect(ev.DeviceStatus, ok=False)
    assert h.sim.wait_plugged(3)
    await h.expect(ev.DeviceStatus, ok=True, detail="ready")   # the poll reconnects
    await h.printer.print_receipt(["A", "after replug"], "Q")
    assert h.sim.receipts[-1].lines[:2] == ["A", "after replug"]
    gone = [s for s in h.statuses() if not s[0]]
    assert len(gone) == 1 and "unavailable" in gone[0][1]     # reported once, not per poll


async def test_reconnects_on_the_next_receipt_without_waiting_for_a_poll():
    h = await Harness(poll_s=60).start()
    try:
        h.sim.unplug(0.3)
        with pytest.raises(DeviceGone):
            await h.printer.print_receipt(["A"], None)
        assert h.sim.wait_plugged(3)
        await h.printer.print_receipt(["B"], None)
        assert h.sim.receipts[-1].lines[0] == "B"
    finally:
        await h.printer.stop()


async def test_an_offline_printer_times_out_quickly_and_the_loop_keeps_running(h):
    h.sim.offline = True
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    with pytest.raises(PrinterTimeout) as info:
        await h.printer.print_receipt(["A"], "Q")
    elapsed = time.monotonic() - started
    task.cancel()
    assert isinstance(info.value, PrinterError) and isinstance(info.value, DeviceTimeout)
    assert elapsed < 1.0 and ticks >= 5                      # the event loop never waited
    assert h.sim.receipts == [] and h.sim.partial.empty
    await h.expect(ev.DeviceStatus, ok=False, detail="printer not answering")
    h.sim.offline = False
    await h.expect(ev.DeviceStatus, ok=True, detail="ready")
    await h.printer.print_receipt(["A"], "Q")
    assert len(h.sim.receipts) == 1


async def test_missing_port_and_not_started():
    printer = EscposPrinter(port="/nonexistent/printer", poll_s=60)
    with pytest.raises(DeviceGone):
        await printer.print_receipt(["A"], None)               # not started
    q = EventQueue()
    await printer.start(q.put)
    try:
        e = await q.expect(ev.DeviceStatus, ok=False)
        assert "unavailable" in e.detail
        with pytest.raises(DeviceGone):
            await printer.print_receipt(["A"], None)
        diag = printer.diagnostics()
        assert diag["driver"] == "escpos" and diag["ok"] is False and not diag["connected"]
    finally:
        await printer.stop()


async def test_receipts_queue_one_after_another(h):
    await asyncio.gather(*(h.printer.print_receipt([f"R{i}", "x"], f"Q{i}") for i in range(4)))
    assert sorted(r.qr[0] for r in h.sim.receipts) == ["Q0", "Q1", "Q2", "Q3"]
    assert all(r.cut and r.lines[0] == "R" + r.qr[0][1:] for r in h.sim.receipts)


async def test_a_receipt_that_cannot_be_rendered_is_a_printer_error():
    h = await Harness(qr_size=0).start()                   # python-escpos refuses size 0
    try:
        with pytest.raises(PrinterError, match="rendered"):
            await h.printer.print_receipt(["A"], "Q")
        assert h.sim.receipts == [] and h.sim.partial.empty
        await h.printer.print_receipt(["A"], None)          # the thread lives on
        assert h.sim.receipts[0].lines[0] == "A"
    finally:
        await h.printer.stop()


async def test_port_lost_while_the_receipt_is_written_is_device_gone(h):
    import serial
    port = h.printer._serial
    real_write = port.write

    def write(data: bytes) -> int:
        if len(data) > 3:                                   # the receipt, not a DLE EOT
            raise serial.SerialException("write failed: [Errno 5] Input/output error")
        return real_write(data)

    port.write = write        # the adapter is pulled between the status check and the data
    with pytest.raises(DeviceGone):
        await h.printer.print_receipt(["A"], None)
    await h.expect(ev.DeviceStatus, ok=False)
    await h.expect(ev.DeviceStatus, ok=True, detail="ready")    # a fresh port at the next poll
    await h.printer.print_receipt(["B"], None)
    assert [r.lines[0] for r in h.sim.receipts] == ["B"]
