"""`[sms]`: the SMS gateway that takes every voucher to the customer's phone
(kiosk/sms.py, kiosk/voucher_delivery.py). No table, or driver "none": no SMS."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from .config_values import Table, check_option, show
from .secrets_source import SecretSources
from .sms import SmsSettings

DRIVERS = ("none", "http")


def load_sms(t: Table, secrets: SecretSources, languages: tuple[str, ...]) -> SmsSettings:
    defaults = SmsSettings()
    driver = t.get("driver", str, "none", choices=DRIVERS)
    values: dict[str, Any] = {"driver": driver}
    for f in fields(SmsSettings):
        if f.name == "driver" or f.name not in t.data:
            continue
        t.seen.add(f.name)
        check_option(t.fail(f.name), f.name, t.data[f.name], getattr(defaults, f.name),
                     secret=f.name == "api_key")
        values[f.name] = t.data[f.name]
    t.done()
    sender = str(values.get("sender", defaults.sender))
    if not (1 <= len(sender) <= 11 and sender.isascii() and sender.isalnum()):
        raise t.error("sender", f"must be 1-11 letters or digits, got {show(sender)}")
    lang = str(values.get("language", ""))
    if lang and lang not in languages:
        raise t.error("language", f"{lang!r} is not in ui.languages")
    values = secrets.fill("sms", driver, values)
    conf = SmsSettings(**values)
    if driver == "http" and not conf.simulator and not conf.base_url:
        raise t.error("base_url", "is required with driver = \"http\" (or simulator = true)")
    return conf
