"""Configuration as data: config/kiosk.toml and config/catalog.toml into typed settings.

A bad file fails at start with one line naming the file, the key and the reason, e.g.

    config/kiosk.toml: ui.idle_timeout_s: must be an integer from 10 to 600, got "soon"

Relative paths inside a file are relative to that file's folder. Unknown keys are errors
(a typo must not silently fall back to a default).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from . import config_values as cv
from .catalog import Catalog, Operator, Product, ProductKind, read_translations
from .config_speech import SpeechSettings, load_speech
from .config_values import ConfigError, Table, read_toml, show
from .money import CURRENCIES
from .secrets_source import SECRET_OPTIONS, SecretSources
from .sms import SmsSettings

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "kiosk.toml"


def _with_base(file: Path, data: dict[str, Any], chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """`base = "kiosk.toml"`: start from that file (in the same folder) and override it
    table by table, key by key. Lets a variant config say only what differs."""
    base_name = data.pop("base", None)
    if base_name is None:
        return data
    if not isinstance(base_name, str) or base_name in ("", ".", "..") or any(
            c in base_name for c in "/\x00"):
        raise ConfigError(file, "base", "must be the name of a file in the same folder, "
                                        f"got {show(base_name)}")
    chain = chain or (file,)
    base_file = file.parent / base_name
    real = os.path.realpath(base_file)
    if real == os.path.realpath(file):
        raise ConfigError(file, "base", "a file cannot be its own base")
    reals = [os.path.realpath(f) for f in chain]
    if real in reals:
        names = [f.name for f in chain[reals.index(real):]] + [base_file.name]
        raise ConfigError(file, "base", "cycle " + " -> ".join(names))
    merged = _with_base(base_file, read_toml(base_file), (*chain, base_file))
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


# ---------------------------------------------------------------- settings
@dataclass(frozen=True)
class DeviceSettings:
    driver: str = "simulated"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UiSettings:
    fullscreen: bool = True
    width: int = 1280
    height: int = 800
    languages: tuple[str, ...] = ("en", "zh_CN", "fil")
    default_language: str = "en"
    idle_timeout_s: int = 60
    answer_timeout_s: int = 20
    result_timeout_s: int = 30
    cjk_font: str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
    scale: float = 0.0           # px per dp; 0: fit the design canvas to the window
    panel_inches: float = 0.0    # the panel's diagonal: its real DPI (touch targets in mm)
    large_text: bool = False     # the start mode of each visit (customers switch it)
    high_contrast: bool = False


@dataclass(frozen=True)
class BackupSettings:
    """[backup]: the journal's second copy (kiosk/backup.py). No folder: no copy."""
    folder: Path | None = None
    interval_min: int = 60
    keep: int = 48


@dataclass(frozen=True)
class Settings:
    file: Path
    kiosk_id: str
    site: str
    support: str
    timezone: str
    demo: bool
    data_dir: Path
    ui: UiSettings
    catalog: Catalog
    cash_denominations: tuple[int, ...]
    max_overpay: int
    qr_expiry_s: int
    voucher_expiry_days: int
    backend_timeout_s: int
    max_unknown_queries: int
    query_interval_s: float
    devices: dict[str, DeviceSettings]
    merchant_name: str
    merchant_city: str
    min_free_mb: int = 64                   # [journal]: no sale below this much free disk
    backup: BackupSettings = field(default_factory=BackupSettings)
    # The support line in the customer's language (the `support` text is the English one).
    support_translations: dict[str, str] = field(default_factory=dict)
    not_found_window_s: float = 900.0       # [backend]: "not found" is final only after it
    late_check_hours: int = 48              # [backend]: a failed top-up is asked again so long
    late_check_interval_s: float = 300.0    # [backend]: between those asks, doubling ...
    late_check_max_interval_s: float = 21600.0   # ... up to this
    sms: SmsSettings = field(default_factory=SmsSettings)   # [sms] (kiosk/config_sms.py)
    speech: SpeechSettings = field(default_factory=SpeechSettings)  # [speech] (config_speech)

    @property
    def currency(self) -> str:
        return self.catalog.currency

    def support_in(self, lang: str) -> str:
        """The support line in language `lang` (English when it has no translation)."""
        return self.support_translations.get(lang) or self.support

    @property
    def journal_path(self) -> Path:
        return self.data_dir / "journal.sqlite3"


DEVICES = ("sim_reader", "cash", "card", "printer", "backend", "wallet")


def _ratio(t: Any, name: str, default: float, lo: float, hi: float) -> float:
    """A positive number in [lo, hi], or 0 for automatic."""
    v = t.get(name, (int, float), default)
    if v != 0 and not lo <= v <= hi:
        raise t.error(name, f"must be 0 (automatic) or from {lo:g} to {hi:g}, got {v!r}")
    return float(v)


def load(path: str | Path | None = None, *, data_dir: str | Path | None = None) -> Settings:
    file = Path(path) if path else DEFAULT_CONFIG
    root = Table(file, "", _with_base(file, read_toml(file)))

    k = root.table("kiosk", required=True)
    kiosk_id = k.get("id", str)
    if not (kiosk_id.replace("-", "").isalnum() and kiosk_id.isascii()) or len(kiosk_id) > 16:
        raise k.error("id", "must be 1-16 letters, digits or '-'")
    site = k.text("site", "")
    support = k.text("support", "")
    supports = read_translations(k, "support_translations")
    timezone = cv.time_zone(k.fail("timezone"), k.get("timezone", str, "UTC"))
    demo = k.get("demo", bool, False)
    ddir = file.parent / k.path("data_dir", "../var")
    if data_dir:
        ddir = Path(data_dir)
    cat_file = file.parent / k.path("catalog", "catalog.toml")
    secrets_file = k.get("secrets_file", str, None)
    if secrets_file is not None:
        secrets_file = file.parent / k.path("secrets_file", "")
    k.done()

    u = root.table("ui")
    ui = UiSettings(
        fullscreen=u.get("fullscreen", bool, True),
        width=u.get("width", int, 1280, lo=640, hi=7680),
        height=u.get("height", int, 800, lo=480, hi=4320),
        languages=tuple(u.str_list("languages", ["en", "zh_CN", "fil"])),
        default_language=u.get("default_language", str, "en"),
        idle_timeout_s=u.get("idle_timeout_s", int, 60, lo=10, hi=600),
        answer_timeout_s=u.get("answer_timeout_s", int, 20, lo=20, hi=300),
        result_timeout_s=u.get("result_timeout_s", int, 30, lo=5, hi=600),
        cjk_font=u.path("cjk_font", UiSettings.cjk_font),
        scale=_ratio(u, "scale", 0.0, 0.5, 4.0),
        panel_inches=_ratio(u, "panel_inches", 0.0, 5.0, 120.0),
        large_text=u.get("large_text", bool, False),
        high_contrast=u.get("high_contrast", bool, False),
    )
    from .i18n import available_languages
    have = available_languages()
    for lang in ui.languages:
        if lang not in have:
            raise u.error("languages", f"no translation for {lang!r} (have {', '.join(have)})")
    if ui.default_language not in ui.languages:
        raise u.error("default_language", f"{ui.default_language!r} is not in ui.languages")
    u.done()

    catalog = load_catalog(cat_file)
    cur = catalog.currency

    p = root.table("payments")
    max_overpay = p.money("max_overpay", cur, "0", zero_ok=True)
    qr_expiry_s = p.get("qr_expiry_s", int, 120, lo=30, hi=900)
    voucher_expiry_days = p.get("voucher_expiry_days", int, 180, lo=1, hi=3650)
    denoms = tuple(sorted(parse_minor_checked(p, "cash_denominations", cur,
                                              ["20", "50", "100", "200", "500", "1000"])))
    p.done()

    b = root.table("backend")
    backend_timeout_s = b.get("timeout_s", int, 15, lo=1, hi=120)
    max_unknown = b.get("max_unknown_queries", int, 5, lo=0, hi=100)
    query_interval = b.seconds("query_interval_s", 2, hi=60)
    not_found_window = b.seconds("not_found_window_s", 900, hi=7 * 86400)
    late_hours = b.get("late_check_hours", int, 48, lo=1, hi=24 * 31)
    late_interval = b.seconds("late_check_interval_s", 300, hi=86400)
    late_max = b.seconds("late_check_max_interval_s", 21600, hi=7 * 86400)
    devices: dict[str, DeviceSettings] = {}
    b_driver = b.get("driver", str, "simulated")
    b_opts = {key: b.data[key] for key in b.data if key not in b.seen}
    b.seen.update(b_opts)
    devices["backend"] = DeviceSettings(b_driver, b_opts)

    w = root.table("wallet")
    merchant_name = w.text("merchant_name", "TOPUP KIOSK")
    merchant_city = w.text("merchant_city", "MANILA")
    devices["wallet"] = DeviceSettings(w.get("driver", str, "simulated"),
                                       {key: w.data[key] for key in w.data if key not in w.seen})

    jt = root.table("journal")
    min_free_mb = jt.get("min_free_mb", int, 64, lo=1, hi=1_000_000)
    jt.done()
    bt = root.table("backup")
    folder = bt.get("folder", str, "")          # another disk or a USB stick; "": no copy
    if folder:
        folder = bt.path("folder", "")
    backup = BackupSettings(
        folder=(file.parent / folder) if folder else None,
        interval_min=bt.get("interval_min", int, 60, lo=1, hi=7 * 24 * 60),
        keep=bt.get("keep", int, 48, lo=1, hi=10_000))
    bt.done()

    for name in ("sim_reader", "cash", "card", "printer"):
        t = root.table(name)
        drv = t.get("driver", str, "simulated")
        devices[name] = DeviceSettings(drv, {key: t.data[key] for key in t.data if key != "driver"})
    sms_table = root.table("sms")
    speech = load_speech(root.table("speech"), ui.languages, cur)
    root.seen.update(DEVICES)
    root.done()

    from drivers.registry import known_drivers, options_of
    for name, dev in devices.items():
        if dev.driver not in known_drivers(name):
            known = ", ".join(known_drivers(name))
            raise ConfigError(file, f"{name}.driver",
                              f"unknown driver {dev.driver!r} (have {known})")
        _check_options(file, name, dev, options_of(name, dev.driver))
    secrets = SecretSources(file, secrets_file)
    from .config_sms import load_sms
    sms = load_sms(sms_table, secrets, ui.languages)
    for name, dev in devices.items():
        devices[name] = DeviceSettings(dev.driver, secrets.fill(name, dev.driver, dev.options))

    return Settings(
        file=file, kiosk_id=kiosk_id, site=site, support=support,
        support_translations=supports, timezone=timezone,
        demo=demo, data_dir=ddir, ui=ui, catalog=catalog, cash_denominations=denoms,
        max_overpay=max_overpay, qr_expiry_s=qr_expiry_s, backend_timeout_s=backend_timeout_s,
        voucher_expiry_days=voucher_expiry_days,
        max_unknown_queries=max_unknown, query_interval_s=query_interval,
        devices=devices, merchant_name=merchant_name, merchant_city=merchant_city,
        min_free_mb=min_free_mb, backup=backup, not_found_window_s=not_found_window,
        late_check_hours=late_hours, late_check_interval_s=late_interval,
        late_check_max_interval_s=late_max, sms=sms, speech=speech)


# Options the kiosk fills in itself for some drivers; not for the config file.
_INTERNAL_OPTIONS = {"denominations", "currency", "merchant_name", "merchant_city", "scard"}


def _check_options(file: Path, name: str, dev: DeviceSettings, accepted: dict[str, Any]) -> None:
    allowed = {k: v for k, v in accepted.items() if k not in _INTERNAL_OPTIONS}
    t = Table(file, name, dev.options)
    for key, value in dev.options.items():
        if key not in allowed:
            have = ", ".join(sorted(allowed)) or "none"
            raise ConfigError(file, f"{name}.{key}",
                              f"unknown option for driver {dev.driver!r} (it takes: {have})")
        cv.check_option(t.fail(key), key, value, allowed[key],
                        secret=(name, key) in SECRET_OPTIONS)


def parse_minor_checked(t: Table, name: str, currency: str, default: list[str]) -> list[int]:
    out = [cv.money(t.fail(name), v, currency) for v in t.str_list(name, default)]
    if len(set(out)) != len(out):
        raise t.error(name, "must be distinct positive amounts")
    return out


def load_catalog(file: Path) -> Catalog:
    root = Table(file, "", read_toml(file))
    currency = root.get("currency", str, choices=tuple(CURRENCIES))
    cc = root.get("country_code", str)
    trunk = root.get("trunk_prefix", str, "0")
    if not (cc.isascii() and cc.isdigit()):
        raise root.error("country_code", f"must be digits, got {show(cc)}")

    ops_raw = root.get("operators", list)
    operators: list[Operator] = []
    for i, raw in enumerate(ops_raw):
        t = Table(file, f"operators[{i}]", raw)
        op = Operator(
            id=t.get("id", str), name=t.get("name", str),
            prefixes=tuple(t.str_list("prefixes")),
            length=t.get("length", int, lo=6, hi=15),
            has_balance_inquiry=t.get("balance_inquiry", bool, False))
        if not op.prefixes or any(not (p.isascii() and p.isdigit()) for p in op.prefixes):
            raise t.error("prefixes", "must be a non-empty list of digit strings")
        if any(len(p) >= op.length for p in op.prefixes):
            raise t.error("prefixes", f"a prefix is as long as the whole number ({op.length})")
        if op.id in {o.id for o in operators}:
            raise t.error("id", f"duplicate operator {op.id!r}")
        t.done()
        operators.append(op)
    seen_prefixes: dict[str, str] = {}
    for op in operators:
        for p in op.prefixes:
            if p in seen_prefixes:
                raise ConfigError(file, "operators",
                                  f"prefix {p} belongs to both {seen_prefixes[p]} and {op.id}")
            seen_prefixes[p] = op.id

    products: list[Product] = []
    for i, raw in enumerate(root.get("products", list)):
        t = Table(file, f"products[{i}]", raw)
        pid = t.get("id", str)
        op_id = t.get("operator", str)
        if op_id not in {o.id for o in operators}:
            raise t.error("operator", f"unknown operator {op_id!r}")
        kind_s = t.get("kind", str, choices=tuple(k.value for k in ProductKind))
        name = t.get("name", str)
        amounts: tuple[int, ...] = ()
        rmin = rmax = None
        step = 1
        if "price" in t.data:
            amounts = (t.money("price", currency),)
        if "amounts" in t.data:
            if amounts:
                raise t.error("amounts", "give either price, amounts or min/max, not several")
            amounts = tuple(parse_minor_checked(t, "amounts", currency, []))
        if "min" in t.data or "max" in t.data:
            if amounts:
                raise t.error("min", "give either price, amounts or min/max, not several")
            rmin, rmax = t.money("min", currency), t.money("max", currency)
            step = t.money("step", currency, "1")
            if not 0 < rmin < rmax or step <= 0:
                raise t.error("max", "must satisfy 0 < min < max and step > 0")
        if not amounts and rmin is None:
            raise t.error("price", "a product needs price, amounts or min/max")
        promo_until = t.get("promo_until", date, None)
        names, descs, promos = (read_translations(t, key)
                                for key in ("names", "descriptions", "promos"))
        if pid in {p.id for p in products}:
            raise t.error("id", f"duplicate product {pid!r}")
        products.append(Product(
            id=pid, operator=op_id, kind=ProductKind(kind_s), name=name, currency=currency,
            amounts=amounts, range_min=rmin, range_max=rmax, range_step=step,
            data_mb=t.get("data_mb", int, None, lo=1, hi=10**7),
            validity_days=t.get("validity_days", int, None, lo=1, hi=3650),
            description=t.get("description", str, ""),
            promo=t.get("promo", str, ""), promo_until=promo_until,
            names=names, descriptions=descs, promos=promos))
        t.done()
    root.done()
    return Catalog(currency=currency, country_code=cc, trunk_prefix=trunk,
                   operators=tuple(operators), products=tuple(products))
