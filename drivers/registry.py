"""Config picks the implementation of each device kind by name; modules load lazily, so a
driver's dependencies (pyserial, pyscard) are imported only when that driver is used."""

from __future__ import annotations

import importlib
from typing import Any

_DRIVERS: dict[str, dict[str, str]] = {
    "sim_reader": {"simulated": "drivers.simulated:SimulatedSimReader",
                   "pcsc": "drivers.sim.pcsc:PcscSimReader"},
    "cash": {"simulated": "drivers.simulated:SimulatedBillAcceptor",
             "id003": "drivers.bill.acceptor:Id003Acceptor"},
    "card": {"simulated": "drivers.simulated:SimulatedCardTerminal",
             "zvt": "drivers.card_terminal.terminal:ZvtTerminal"},
    "printer": {"simulated": "drivers.simulated:SimulatedPrinter",
                "escpos": "drivers.printer.escpos:EscposPrinter"},
    "backend": {"simulated": "kiosk.backend.simulated:SimulatedBackend",
                "reloadly": "kiosk.backend.reloadly:ReloadlyBackend"},
    "wallet": {"simulated": "kiosk.payments.simulated:SimulatedWallet",
               "http": "kiosk.payments.gateway:HttpWallet"},
}


def known_drivers(kind: str) -> tuple[str, ...]:
    return tuple(_DRIVERS.get(kind, {}))


def options_of(kind: str, driver: str) -> dict[str, Any]:
    """The options a driver takes (from its constructor), with their defaults."""
    import inspect
    module, _, cls = _DRIVERS[kind][driver].partition(":")
    sig = inspect.signature(getattr(importlib.import_module(module), cls))
    return {n: p.default for n, p in sig.parameters.items()
            if p.kind is p.POSITIONAL_OR_KEYWORD and n != "self"}


def create(kind: str, driver: str, **options: Any) -> Any:
    target = _DRIVERS[kind][driver]
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)(**options)
