"""Composition: which concrete driver, client or simulator serves each device kind, built
once from the configuration (the registry imports only what is used)."""

from __future__ import annotations

from typing import Any

from drivers import registry

from .config import Settings


def options(settings: Settings, name: str, driver: str, given: dict[str, Any]) -> dict[str, Any]:
    """A device's options: its config section, plus what the kiosk's settings imply."""
    opts = dict(given)
    if name == "cash":
        opts.setdefault("denominations", settings.cash_denominations)
        if driver != "simulated":
            opts.setdefault("currency", settings.currency)
    if name == "backend" and driver != "simulated":
        opts.setdefault("timeout_s", float(settings.backend_timeout_s))
    if name == "card" and driver != "simulated":
        opts.setdefault("currency", settings.currency)
    if name == "wallet":
        opts.setdefault("currency", settings.currency)
        opts.setdefault("merchant_name", settings.merchant_name)
        opts.setdefault("merchant_city", settings.merchant_city)
    return opts


def build_devices(settings: Settings, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every configured device, except those handed in ready-made (tests, benchmarks)."""
    devices = dict(given or {})
    for name, dev in settings.devices.items():
        if name not in devices:
            devices[name] = registry.create(
                name, dev.driver, **options(settings, name, dev.driver, dict(dev.options)))
    return devices
