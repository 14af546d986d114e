"""Configuration as data: config/kiosk.toml and config/catalog.toml into typed settings.

A bad file fails at start with one line naming the file, the key and the reason, e.g.

    config/kiosk.toml: ui.idle_timeout_s: must be an integer from 10 to 600, got "soon"

Relative paths inside a file are relative to that file's folder. Unknown keys are errors
(a typo must not silently fall back to a default).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from .catalog import Catalog, Operator, Product, ProductKind
from .money import CURRENCIES, MoneyError, parse_minor

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "kiosk.toml"


class ConfigError(Exception):
    def __init__(self, file: Path | str, key: str, reason: str) -> None:
        self.file, self.key, self.reason = str(file), key, reason
        super().__init__(f"{file}: {key}: {reason}" if key else f"{file}: {reason}")


class _Table:
    """Typed access to one TOML table; remembers which keys were read."""

    def __init__(self, file: Path, prefix: str, data: Any) -> None:
        self.file, self.prefix = file, prefix
        if not isinstance(data, dict):
            raise ConfigError(file, prefix, f"must be a table, got {_show(data)}")
        self.data = data
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, reason: str) -> ConfigError:
        return ConfigError(self.file, self.key(name), reason)

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = ..., *,
            choices: tuple[Any, ...] = (), lo: int | None = None, hi: int | None = None) -> Any:
        self.seen.add(name)
        if name not in self.data:
            if default is ...:
                raise self.error(name, "is required")
            return default
        v = self.data[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (isinstance(v, bool) and bool not in kinds) or not isinstance(v, kinds):
            want = " or ".join(_type_name(k) for k in kinds)
            raise self.error(name, f"must be {want}, got {_show(v)}")
        if choices and v not in choices:
            raise self.error(name, f"must be one of {', '.join(map(str, choices))}, got {_show(v)}")
        if isinstance(v, int) and not isinstance(v, bool) and (
                (lo is not None and v < lo) or (hi is not None and v > hi)):
            raise self.error(name, f"must be an integer from {lo} to {hi}, got {v}")
        return v

    def str_list(self, name: str, default: Any = ...) -> list[str]:
        v = self.get(name, list, default)
        if any(not isinstance(x, str) for x in v):
            raise self.error(name, "must be a list of strings")
        return list(v)

    def money(self, name: str, currency: str, default: Any = ...) -> int:
        v = self.get(name, str, default)
        if v is None:
            return 0
        try:
            return parse_minor(v, currency)
        except MoneyError as exc:
            raise self.error(name, str(exc)) from None

    def table(self, name: str, required: bool = False) -> _Table:
        self.seen.add(name)
        if name not in self.data and required:
            raise self.error(name, "table is required")
        return _Table(self.file, self.key(name), self.data.get(name, {}))

    def done(self) -> None:
        extra = sorted(set(self.data) - self.seen)
        if extra:
            raise self.error(extra[0], "unknown key (misspelt?)")


def _type_name(k: type) -> str:
    return {str: "a string", int: "an integer", bool: "true or false", list: "a list",
            dict: "a table", float: "a number", date: "a date (YYYY-MM-DD)"}.get(k, k.__name__)


def _show(v: Any) -> str:
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, float):
        return f"{v} (a float: write money as a string like \"20.00\")"
    return repr(v)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read: {exc.strerror}") from None


def _with_base(file: Path, data: dict[str, Any]) -> dict[str, Any]:
    """`base = "kiosk.toml"`: start from that file (in the same folder) and override it
    table by table, key by key. Lets a variant config say only what differs."""
    base_name = data.pop("base", None)
    if base_name is None:
        return data
    if not isinstance(base_name, str) or "/" in base_name:
        raise ConfigError(file, "base", "must be the name of a file in the same folder")
    base_file = file.parent / base_name
    if base_file.resolve() == file.resolve():
        raise ConfigError(file, "base", "a file cannot be its own base")
    merged = _with_base(base_file, _read_toml(base_file))
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
    languages: tuple[str, ...] = ("en", "zh_CN")
    default_language: str = "en"
    idle_timeout_s: int = 60
    answer_timeout_s: int = 20
    result_timeout_s: int = 30
    cjk_font: str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"


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

    @property
    def currency(self) -> str:
        return self.catalog.currency

    @property
    def journal_path(self) -> Path:
        return self.data_dir / "journal.sqlite3"


DEVICES = ("sim_reader", "cash", "card", "printer", "backend", "wallet")


def load(path: str | Path | None = None, *, data_dir: str | Path | None = None) -> Settings:
    file = Path(path) if path else DEFAULT_CONFIG
    root = _Table(file, "", _with_base(file, _read_toml(file)))

    k = root.table("kiosk", required=True)
    kiosk_id = k.get("id", str)
    if not kiosk_id.replace("-", "").isalnum() or len(kiosk_id) > 16:
        raise k.error("id", "must be 1-16 letters, digits or '-'")
    site = k.get("site", str, "")
    support = k.get("support", str, "")
    timezone = k.get("timezone", str, "UTC")
    demo = k.get("demo", bool, False)
    ddir = file.parent / k.get("data_dir", str, "../var")
    if data_dir:
        ddir = Path(data_dir)
    cat_file = file.parent / k.get("catalog", str, "catalog.toml")
    k.done()

    u = root.table("ui")
    ui = UiSettings(
        fullscreen=u.get("fullscreen", bool, True),
        width=u.get("width", int, 1280, lo=640, hi=7680),
        height=u.get("height", int, 800, lo=480, hi=4320),
        languages=tuple(u.str_list("languages", ["en", "zh_CN"])),
        default_language=u.get("default_language", str, "en"),
        idle_timeout_s=u.get("idle_timeout_s", int, 60, lo=10, hi=600),
        answer_timeout_s=u.get("answer_timeout_s", int, 20, lo=20, hi=300),
        result_timeout_s=u.get("result_timeout_s", int, 30, lo=5, hi=600),
        cjk_font=u.get("cjk_font", str, UiSettings.cjk_font),
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
    max_overpay = p.money("max_overpay", cur, "0")
    qr_expiry_s = p.get("qr_expiry_s", int, 120, lo=30, hi=900)
    voucher_expiry_days = p.get("voucher_expiry_days", int, 180, lo=1, hi=3650)
    denoms = tuple(sorted(parse_minor_checked(p, "cash_denominations", cur,
                                              ["20", "50", "100", "200", "500", "1000"])))
    p.done()

    b = root.table("backend")
    backend_timeout_s = b.get("timeout_s", int, 15, lo=1, hi=120)
    max_unknown = b.get("max_unknown_queries", int, 5, lo=0, hi=100)
    query_interval = b.get("query_interval_s", (int, float), 2)
    devices: dict[str, DeviceSettings] = {}
    b_driver = b.get("driver", str, "simulated")
    b_opts = {key: b.data[key] for key in b.data if key not in b.seen}
    b.seen.update(b_opts)
    devices["backend"] = DeviceSettings(b_driver, b_opts)

    w = root.table("wallet")
    merchant_name = w.get("merchant_name", str, "TOPUP KIOSK")
    merchant_city = w.get("merchant_city", str, "MANILA")
    devices["wallet"] = DeviceSettings(w.get("driver", str, "simulated"),
                                       {key: w.data[key] for key in w.data if key not in w.seen})

    for name in ("sim_reader", "cash", "card", "printer"):
        t = root.table(name)
        drv = t.get("driver", str, "simulated")
        devices[name] = DeviceSettings(drv, {key: t.data[key] for key in t.data if key != "driver"})
    root.seen.update(DEVICES)
    root.done()

    from drivers.registry import known_drivers, options_of
    for name, dev in devices.items():
        if dev.driver not in known_drivers(name):
            known = ", ".join(known_drivers(name))
            raise ConfigError(file, f"{name}.driver",
                              f"unknown driver {dev.driver!r} (have {known})")
        _check_options(file, name, dev, options_of(name, dev.driver))

    return Settings(
        file=file, kiosk_id=kiosk_id, site=site, support=support, timezone=timezone,
        demo=demo, data_dir=ddir, ui=ui, catalog=catalog, cash_denominations=denoms,
        max_overpay=max_overpay, qr_expiry_s=qr_expiry_s, backend_timeout_s=backend_timeout_s,
        voucher_expiry_days=voucher_expiry_days,
        max_unknown_queries=max_unknown, query_interval_s=float(query_interval),
        devices=devices, merchant_name=merchant_name, merchant_city=merchant_city)


# Options the kiosk fills in itself for some drivers; not for the config file.
_INTERNAL_OPTIONS = {"denominations", "currency", "merchant_name", "merchant_city", "scard"}


def _check_options(file: Path, name: str, dev: DeviceSettings, accepted: dict[str, Any]) -> None:
    allowed = {k: v for k, v in accepted.items() if k not in _INTERNAL_OPTIONS}
    for key, value in dev.options.items():
        if key not in allowed:
            have = ", ".join(sorted(allowed)) or "none"
            raise ConfigError(file, f"{name}.{key}",
                              f"unknown option for driver {dev.driver!r} (it takes: {have})")
        default = allowed[key]
        if isinstance(default, (int, float, str, bool)) and default is not None and (
                type(value) is not type(default)
                and not (isinstance(default, float) and isinstance(value, int))):
            raise ConfigError(file, f"{name}.{key}",
                              f"must be {_type_name(type(default))}, got {_show(value)}")
        if key == "reader":
            try:
                re.compile(value)
            except re.error as exc:
                raise ConfigError(file, f"{name}.{key}",
                                  f"not a valid regular expression: {exc}") from None


def parse_minor_checked(t: _Table, name: str, currency: str, default: list[str]) -> list[int]:
    vals = t.str_list(name, default)
    out = []
    for v in vals:
        try:
            out.append(parse_minor(v, currency))
        except MoneyError as exc:
            raise t.error(name, str(exc)) from None
    if len(set(out)) != len(out) or any(x <= 0 for x in out):
        raise t.error(name, "must be distinct positive amounts")
    return out


def load_catalog(file: Path) -> Catalog:
    root = _Table(file, "", _read_toml(file))
    currency = root.get("currency", str, choices=tuple(CURRENCIES))
    cc = root.get("country_code", str)
    trunk = root.get("trunk_prefix", str, "0")
    if not (cc.isascii() and cc.isdigit()):
        raise root.error("country_code", f"must be digits, got {_show(cc)}")

    ops_raw = root.get("operators", list)
    operators: list[Operator] = []
    for i, raw in enumerate(ops_raw):
        t = _Table(file, f"operators[{i}]", raw)
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
        t = _Table(file, f"products[{i}]", raw)
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
        names = t.get("names", dict, {})
        descs = t.get("descriptions", dict, {})
        if pid in {p.id for p in products}:
            raise t.error("id", f"duplicate product {pid!r}")
        products.append(Product(
            id=pid, operator=op_id, kind=ProductKind(kind_s), name=name, currency=currency,
            amounts=amounts, range_min=rmin, range_max=rmax, range_step=step,
            data_mb=t.get("data_mb", int, None, lo=1, hi=10**7),
            validity_days=t.get("validity_days", int, None, lo=1, hi=3650),
            description=t.get("description", str, ""),
            promo=t.get("promo", str, ""), promo_until=promo_until,
            names={str(k2): str(v) for k2, v in names.items()},
            descriptions={str(k2): str(v) for k2, v in descs.items()}))
        t.done()
    root.done()
    return Catalog(currency=currency, country_code=cc, trunk_prefix=trunk,
                   operators=tuple(operators), products=tuple(products))
