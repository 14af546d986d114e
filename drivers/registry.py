"""Config picks the implementation of each device kind by name; modules load lazily, so a
driver's dependencies (pyserial, pyscard) are imported only when that driver is used.

A name ending in "-sim" ("id003-sim", "zvt-sim", "escpos-sim") is the real serial driver
on a simulated device: `create` starts the device's byte-exact simulator behind a pty
(drivers/ptysim.py), made to match the driver's options by its `for_driver`, and builds the
driver with the simulator's link as its `port`. The driver then owns the simulator: it is
`driver.simulator` (the demo panel and the tests drive it there) and the driver's stop()
stops it. The drivers themselves know nothing about simulators.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OnSimulator:
    """A real driver on the link of a device simulator."""
    driver: str                 # "module:Class"
    simulator: str              # "module:Class.factory", called with the driver's options


_ID003 = "drivers.bill.acceptor:Id003Acceptor"
_ZVT = "drivers.card_terminal.terminal:ZvtTerminal"
_ESCPOS = "drivers.printer.escpos:EscposPrinter"

_DRIVERS: dict[str, dict[str, str | OnSimulator]] = {
    "sim_reader": {"simulated": "drivers.simulated:SimulatedSimReader",
                   "pcsc": "drivers.sim.pcsc:PcscSimReader"},
    "cash": {"simulated": "drivers.simulated:SimulatedBillAcceptor",
             "id003": _ID003,
             "id003-sim": OnSimulator(_ID003,
                                      "drivers.bill.simulator:Id003Simulator.for_driver")},
    "card": {"simulated": "drivers.simulated:SimulatedCardTerminal",
             "zvt": _ZVT,
             "zvt-sim": OnSimulator(_ZVT,
                                    "drivers.card_terminal.simulator:ZvtSimulator.for_driver")},
    "printer": {"simulated": "drivers.simulated:SimulatedPrinter",
                "escpos": _ESCPOS,
                "escpos-sim": OnSimulator(_ESCPOS,
                                          "drivers.printer.escpos_sim:EscposSimulator.for_driver")},
    "backend": {"simulated": "kiosk.backend.simulated:SimulatedBackend",
                "reloadly": "kiosk.backend.reloadly:ReloadlyBackend"},
    "wallet": {"simulated": "kiosk.payments.simulated:SimulatedWallet",
               "http": "kiosk.payments.gateway:HttpWallet"},
}


def _load(target: str) -> Any:
    module, _, path = target.partition(":")
    obj: Any = importlib.import_module(module)
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


def known_drivers(kind: str) -> tuple[str, ...]:
    return tuple(_DRIVERS.get(kind, {}))


def options_of(kind: str, driver: str) -> dict[str, Any]:
    """The options a driver takes (from its constructor), with their defaults. A driver on a
    simulator takes no `port`: the simulator gives it one."""
    target = _DRIVERS[kind][driver]
    simulated = isinstance(target, OnSimulator)
    cls = _load(target.driver if isinstance(target, OnSimulator) else target)
    return {n: p.default for n, p in inspect.signature(cls).parameters.items()
            if p.kind is p.POSITIONAL_OR_KEYWORD and n != "self"
            and not (simulated and n == "port")}


def create(kind: str, driver: str, **options: Any) -> Any:
    target = _DRIVERS[kind][driver]
    if isinstance(target, OnSimulator):
        return _on_simulator(driver, target, options)
    return _load(target)(**options)


def _on_simulator(name: str, target: OnSimulator, options: dict[str, Any]) -> Any:
    if "port" in options:
        raise TypeError(f"driver {name!r} takes no port: its simulator provides one")
    sim = _load(target.simulator)(**options).start()
    try:
        device = _load(target.driver)(port=sim.link, **options)
    except BaseException:
        sim.stop()
        raise
    return _own(device, sim)


def _own(device: Any, sim: Any) -> Any:
    """`device.simulator` is `sim`, and stopping the device stops `sim` after it."""
    device.simulator = sim
    stop_driver = device.stop

    async def stop() -> None:
        try:
            await stop_driver()
        finally:
            await asyncio.to_thread(sim.stop)

    device.stop = stop
    return device
