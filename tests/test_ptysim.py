"""drivers/ptysim.py and the "-sim" drivers of drivers/registry.py: a pty simulator's link,
its temporary folder removed at stop (or at exit when never stopped), and a real driver
that owns the simulator it runs on."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from drivers import registry
from drivers.bill.simulator import Id003Simulator
from drivers.card_terminal.simulator import ZvtSimulator
from drivers.printer.escpos_sim import EscposSimulator
from drivers.ptysim import PtySimulator
from kiosk import events as ev
from tests.events import EventQueue

ROOT = Path(__file__).resolve().parents[1]
SIMULATORS = [Id003Simulator, ZvtSimulator, EscposSimulator]


@pytest.fixture
def tmp_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary folder that tempfile uses, empty, for this test only."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.mark.parametrize("cls", SIMULATORS, ids=lambda c: c.__name__)
def test_start_and_stop_leave_no_folder_behind(cls: type[PtySimulator], tmp_temp: Path) -> None:
    sim = cls()
    assert sim.link == "" and os.listdir(tmp_temp) == []    # nothing made before start
    sim.start()
    assert Path(sim.link_dir).parent == tmp_temp
    assert os.path.islink(sim.link) and os.readlink(sim.link) == sim.pty_path
    assert sim.pty_path.startswith("/dev/pts/") and sim.wait_plugged(0)
    sim.stop()
    assert os.listdir(tmp_temp) == [] and not os.path.lexists(sim.link)
    assert not sim.wait_plugged(0)
    sim.stop()                                               # again: nothing to do
    with cls() as again:                                     # start, stop as a context
        assert os.path.islink(again.link)
    assert os.listdir(tmp_temp) == []


def test_stop_while_unplugged_and_stop_without_start(tmp_temp: Path) -> None:
    EscposSimulator().stop()
    sim = EscposSimulator().start()
    sim.unplug(30)
    assert not os.path.lexists(sim.link)
    sim.stop()                                               # does not wait out the 30 s
    assert os.listdir(tmp_temp) == []


def test_a_given_folder_is_kept_and_only_the_link_goes(tmp_path: Path) -> None:
    sim = ZvtSimulator(link_dir=str(tmp_path))
    assert sim.link == str(tmp_path / "terminal")
    with sim:
        assert os.path.islink(sim.link)
    assert tmp_path.is_dir() and list(tmp_path.iterdir()) == []


def test_the_pty_is_raw_8n1() -> None:
    import termios
    with Id003Simulator() as sim:
        fd = os.open(sim.link, os.O_RDWR | os.O_NOCTTY)
        try:
            cflag, lflag = termios.tcgetattr(fd)[2], termios.tcgetattr(fd)[3]
        finally:
            os.close(fd)
    assert cflag & termios.CSIZE == termios.CS8
    assert not cflag & (termios.PARENB | termios.CSTOPB)
    assert not lflag & (termios.ICANON | termios.ECHO)


def test_simulators_never_stopped_are_cleaned_up_at_exit(tmp_path: Path) -> None:
    code = ("from drivers.bill.simulator import Id003Simulator\n"
            "from drivers.card_terminal.simulator import ZvtSimulator\n"
            "from drivers.printer.escpos_sim import EscposSimulator\n"
            "sims = [c().start() for c in (Id003Simulator, ZvtSimulator, EscposSimulator)]\n"
            "import os; print(len(os.listdir(os.environ['TMPDIR'])))\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "TMPDIR": str(tmp_path)}, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "3"                           # three folders while running
    assert list(tmp_path.iterdir()) == []                    # none after exit


# ---------------------------------------------------------------- the registry's "-sim"
@pytest.mark.parametrize("kind,driver", [("cash", "id003"), ("card", "zvt"),
                                         ("printer", "escpos")])
def test_drivers_know_nothing_of_simulators(kind: str, driver: str) -> None:
    assert "simulator" not in registry.options_of(kind, driver)
    assert "port" in registry.options_of(kind, driver)
    sim_options = registry.options_of(kind, driver + "-sim")
    assert "port" not in sim_options and "simulator" not in sim_options
    assert set(sim_options) == set(registry.options_of(kind, driver)) - {"port"}
    assert driver + "-sim" in registry.known_drivers(kind)


async def test_a_sim_driver_owns_its_simulator(tmp_temp: Path) -> None:
    printer = registry.create("printer", "escpos-sim", width=32, poll_s=0.1)
    sim = printer.simulator
    assert isinstance(sim, EscposSimulator) and printer.port == sim.link
    assert sim.printout.width == 32                          # made to match the driver
    q = EventQueue()
    await printer.start(q.put)
    await q.expect(ev.DeviceStatus, ok=True, detail="ready")
    await printer.print_receipt(["HELLO"], None)
    assert sim.receipts[0].lines[0] == "HELLO"
    await printer.stop()                                     # stops the simulator too
    assert not os.path.exists(sim.link_dir) and not sim.wait_plugged(0)
    # (python-escpos makes a tmpXXXXXXXX folder of its own when first imported)
    assert [n for n in os.listdir(tmp_temp) if n.startswith("escpos-")] == []
    await printer.stop()


async def test_a_driver_that_cannot_be_built_leaves_no_simulator(tmp_temp: Path) -> None:
    with pytest.raises(ValueError, match="password"):
        registry.create("card", "zvt-sim", password="12")
    with pytest.raises(TypeError, match="no port"):
        registry.create("cash", "id003-sim", port="/dev/ttyS0")
    await asyncio.sleep(0)
    assert os.listdir(tmp_temp) == []


def test_the_simulators_match_the_drivers_options() -> None:
    with registry.create("cash", "id003-sim", denominations=(2000, 5000)).simulator as acc:
        assert acc.device.denominations == {0x61: 2000, 0x62: 5000}
    card = registry.create("card", "zvt-sim", currency="PHP", password="123456")
    try:
        assert (card.simulator.currency, card.simulator.password) == (608, "123456")
    finally:
        card.simulator.stop()
