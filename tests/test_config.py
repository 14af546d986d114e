"""config/kiosk.toml + catalog.toml: the default loads; every defect names file, key, reason."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kiosk import config as config_mod
from kiosk.config import DEFAULT_CONFIG, ConfigError, load

CONFIG_DIR = DEFAULT_CONFIG.parent


def test_default_config_loads(tmp_path: Path) -> None:
    s = load(data_dir=tmp_path)
    assert s.kiosk_id == "K0001"
    assert s.currency == "PHP"
    assert s.cash_denominations == (2000, 5000, 10000, 20000, 50000, 100000)
    assert s.max_overpay == 0
    assert s.qr_expiry_s == 120
    assert s.backend_timeout_s == 15
    assert s.max_unknown_queries == 5
    assert s.query_interval_s == 2.0
    assert s.ui.idle_timeout_s == 60
    assert s.ui.languages == ("en", "zh_CN", "fil")
    assert set(s.devices) == {"sim_reader", "cash", "card", "printer", "backend", "wallet"}
    assert {n: d.driver for n, d in s.devices.items()} == {
        "sim_reader": "simulated", "cash": "id003-sim", "card": "zvt-sim",
        "printer": "escpos-sim", "backend": "reloadly", "wallet": "http"}
    assert "port" not in s.devices["cash"].options       # the simulator provides it
    assert s.data_dir == tmp_path
    assert s.journal_path == tmp_path / "journal.sqlite3"
    assert len(s.catalog.products) == 18


def test_data_dir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    s = load()
    assert s.data_dir == CONFIG_DIR / "../var"


@dataclass(frozen=True)
class Defect:
    name: str
    file: str                # "kiosk.toml" | "catalog.toml": the file that gets the defect
    pattern: str             # regex (MULTILINE) of what to replace
    replacement: str
    bad_file: str            # the file the error must name
    key: str                 # the key the error must name ("" if none)
    reason: str              # a regex the reason must match


DEFECTS = [
    Defect("toml_syntax", "kiosk.toml", r"^\[ui\]$", "[ui", "kiosk.toml", "", r"not valid TOML"),
    Defect("toml_syntax_catalog", "catalog.toml", r'^currency = "PHP"$', 'currency = "PHP',
           "catalog.toml", "", r"not valid TOML"),
    Defect("unknown_key", "kiosk.toml", r"^idle_timeout_s = 60", "idle_timout_s = 60",
           "kiosk.toml", "ui.idle_timout_s", r"unknown key"),
    Defect("unknown_table", "kiosk.toml", r"^\[printer\]$", "[printr]",
           "kiosk.toml", "printr", r"unknown key"),
    Defect("wrong_type", "kiosk.toml", r"^idle_timeout_s = 60", 'idle_timeout_s = "soon"',
           "kiosk.toml", "ui.idle_timeout_s", r'must be an integer.*"soon"'),
    Defect("out_of_range", "kiosk.toml", r"^idle_timeout_s = 60", "idle_timeout_s = 5",
           "kiosk.toml", "ui.idle_timeout_s", r"from 10 to 600, got 5"),
    Defect("bool_for_int", "kiosk.toml", r"^qr_expiry_s = 120", "qr_expiry_s = true",
           "kiosk.toml", "payments.qr_expiry_s", r"must be an integer"),
    Defect("float_money", "kiosk.toml", r'^max_overpay = "0.00"', "max_overpay = 0.5",
           "kiosk.toml", "payments.max_overpay", r"float"),
    Defect("money_too_precise", "kiosk.toml", r'^max_overpay = "0.00"', 'max_overpay = "0.001"',
           "kiosk.toml", "payments.max_overpay", r"more decimals"),
    Defect("float_denomination", "kiosk.toml", r'^cash_denominations = .*$',
           'cash_denominations = [20.0, 50.0]', "kiosk.toml", "payments.cash_denominations",
           r"list of strings"),
    Defect("duplicate_denomination", "kiosk.toml", r'^cash_denominations = .*$',
           'cash_denominations = ["20.00", "20"]', "kiosk.toml", "payments.cash_denominations",
           r"distinct"),
    Defect("unknown_driver", "kiosk.toml", r'^(\[cash\]\n(?:#.*\n)*)driver = "id003-sim"',
           r'\1driver = "id003-nope"', "kiosk.toml", "cash.driver",
           r"unknown driver 'id003-nope'"),
    Defect("unknown_backend_driver", "kiosk.toml", r'^(\[backend\]\n)driver = "reloadly"',
           r'\1driver = "acme"', "kiosk.toml", "backend.driver", r"unknown driver 'acme'"),
    Defect("bad_language", "kiosk.toml", r'^languages = .*$', 'languages = ["en", "tl"]',
           "kiosk.toml", "ui.languages", r"no translation for 'tl'"),
    Defect("bad_kiosk_id", "kiosk.toml", r'^id = "K0001"', 'id = "K 0001"',
           "kiosk.toml", "kiosk.id", r"letters, digits"),
    Defect("missing_required_key", "kiosk.toml", r'^id = "K0001".*$', "",
           "kiosk.toml", "kiosk.id", r"is required"),
    Defect("missing_catalog_file", "kiosk.toml", r'^catalog = "catalog.toml"',
           'catalog = "nope.toml"', "nope.toml", "", r"file not found"),
    Defect("unknown_currency", "catalog.toml", r'^currency = "PHP"$', 'currency = "XYZ"',
           "catalog.toml", "currency", r'must be one of .*got "XYZ"'),
    Defect("duplicate_prefix", "catalog.toml", r'^prefixes = \["0908"',
           'prefixes = ["0917", "0908"',
           "catalog.toml", "operators", r"prefix 0917 belongs to both globe and smart"),
    Defect("unknown_operator", "catalog.toml", r'^(id = "globe-load"\n)operator = "globe"',
           r'\1operator = "nowhere"', "catalog.toml", "products[0].operator",
           r"unknown operator 'nowhere'"),
    Defect("operator_unknown_key", "catalog.toml", r'^balance_inquiry = true$',
           "balance_enquiry = true", "catalog.toml", "operators[0].balance_enquiry",
           r"unknown key"),
    Defect("float_price", "catalog.toml", r'^price = "50.00"$', "price = 50.0",
           "catalog.toml", "products[2].price", r"float"),
    Defect("bad_range", "catalog.toml", r'^max = "1000.00"$', 'max = "5.00"',
           "catalog.toml", "products[1].max", r"min < max"),
    Defect("bad_promo_date", "catalog.toml", r'^promo_until = 2026-12-31$',
           'promo_until = "end of year"', "catalog.toml", "products[3].promo_until",
           r"must be a date"),
    Defect("duplicate_product", "catalog.toml", r'^id = "smart-load"$', 'id = "globe-load"',
           "catalog.toml", "products[7].id", r"duplicate product 'globe-load'"),
    # A date-time is not a date (comparing one with today's date would fail at run time).
    Defect("datetime_promo", "catalog.toml", r'^promo_until = 2026-12-31$',
           "promo_until = 2026-12-31T23:59:00", "catalog.toml", "products[3].promo_until",
           r"must be a date .*got 2026-12-31T23:59:00 \(a TOML date-time\)"),
    Defect("zero_price", "catalog.toml", r'^price = "50.00"$', 'price = "0.00"',
           "catalog.toml", "products[2].price", r"above 0"),
    Defect("zero_amount", "catalog.toml", r'^amounts = \["10.00"', 'amounts = ["0"',
           "catalog.toml", "products[0].amounts", r"above 0"),
    Defect("huge_price", "catalog.toml", r'^price = "50.00"$', 'price = "' + "9" * 5000 + '"',
           "catalog.toml", "products[2].price", r"not an amount"),
    Defect("bool_price", "catalog.toml", r'^price = "50.00"$', "price = true",
           "catalog.toml", "products[2].price", r"must be a string .*got true"),
    Defect("int_price", "catalog.toml", r'^price = "50.00"$', "price = 50",
           "catalog.toml", "products[2].price", r"must be a string .*got 50"),
    Defect("name_not_a_string", "catalog.toml", r'^names = \{ zh_CN = "话费" \}$',
           "names = { zh_CN = 5 }", "catalog.toml", "products[0].names",
           r"table of strings"),
]


def _write_configs(tmp_path: Path, d: Defect | None) -> Path:
    for name in ("kiosk.toml", "catalog.toml"):
        shutil.copy(CONFIG_DIR / name, tmp_path / name)
    if d is not None:
        target = tmp_path / d.file
        text = target.read_text(encoding="utf-8")
        new, n = re.subn(d.pattern, d.replacement, text, count=1, flags=re.MULTILINE)
        assert n == 1, f"defect {d.name}: pattern {d.pattern!r} not found in {d.file}"
        target.write_text(new, encoding="utf-8")
    return tmp_path / "kiosk.toml"


def test_unchanged_copies_load(tmp_path: Path) -> None:
    s = load(_write_configs(tmp_path, None), data_dir=tmp_path / "var")
    assert s.kiosk_id == "K0001" and len(s.catalog.operators) == 5


@pytest.mark.parametrize("d", DEFECTS, ids=[d.name for d in DEFECTS])
def test_broken_config_names_file_key_and_reason(tmp_path: Path, d: Defect) -> None:
    path = _write_configs(tmp_path, d)
    with pytest.raises(ConfigError) as info:
        load(path, data_dir=tmp_path / "var")
    err = info.value
    message = str(err)
    assert Path(err.file).name == d.bad_file
    assert str(tmp_path / d.bad_file) in message
    assert err.key == d.key
    if d.key:
        assert f": {d.key}: " in message
    assert re.search(d.reason, err.reason), err.reason
    assert message.endswith(err.reason)
    assert "\n" not in message                  # one line


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load(missing)
    assert info.value.file == str(missing)
    assert str(missing) in str(info.value)
    assert "file not found" in str(info.value)


def _variant(tmp_path: Path, text: str) -> Path:
    for name in ("kiosk.toml", "catalog.toml"):
        shutil.copy(DEFAULT_CONFIG.parent / name, tmp_path / name)
    path = tmp_path / "variant.toml"
    path.write_text('base = "kiosk.toml"\n' + text)
    return path


def test_a_variant_config_overrides_its_base_table_by_table(tmp_path: Path) -> None:
    s = load(_variant(tmp_path, '[sim_reader]\ndriver = "pcsc"\nreader = "^Virtual PCD"\n'
                                '[ui]\nidle_timeout_s = 90\n'))
    assert s.devices["sim_reader"].driver == "pcsc"
    assert s.devices["sim_reader"].options == {"reader": "^Virtual PCD"}
    assert s.ui.idle_timeout_s == 90 and s.ui.answer_timeout_s == 20     # rest from base
    assert s.kiosk_id == "K0001"


def test_real_serial_devices_are_one_word_and_a_port_away(tmp_path: Path) -> None:
    s = load(_variant(tmp_path, '[cash]\ndriver = "id003"\nport = "/dev/kiosk-acceptor"\n'
                                '[card]\ndriver = "zvt"\nport = "/dev/kiosk-card"\n'
                                '[printer]\ndriver = "escpos"\nport = "/dev/kiosk-printer"\n'))
    assert {n: (d.driver, d.options.get("port")) for n, d in s.devices.items()
            if n in ("cash", "card", "printer")} == {
        "cash": ("id003", "/dev/kiosk-acceptor"), "card": ("zvt", "/dev/kiosk-card"),
        "printer": ("escpos", "/dev/kiosk-printer")}
    assert s.devices["cash"].options["poll_ms"] == 150               # the rest from base


def test_the_shipped_pcsc_demo_config_loads() -> None:
    s = load(DEFAULT_CONFIG.parent / "demo-pcsc.toml")
    assert s.devices["sim_reader"].driver == "pcsc"
    assert s.devices["sim_reader"].options["demo_vpcd_port"] == 35963


@pytest.mark.parametrize("text,key,reason", [
    ('[sim_reader]\ndriver = "pcsc"\nreader = "(("\n', "sim_reader.reader",
     "not a valid regular expression"),
    ('[sim_reader]\ndriver = "pcsc"\npolls = 3\n', "sim_reader.polls", "unknown option"),
    ('[sim_reader]\ndriver = "pcsc"\npoll_ms = "fast"\n', "sim_reader.poll_ms",
     "must be an integer"),
    # A simulated serial device takes no port (its simulator provides one), and simulation
    # is chosen by the driver's name, not by a flag.
    ('[cash]\nport = "/dev/kiosk-acceptor"\n', "cash.port", "unknown option"),
    ('[printer]\ndriver = "escpos"\nsimulator = true\n', "printer.simulator",
     "unknown option"),
])
def test_driver_options_are_checked_at_start(tmp_path: Path, text: str, key: str,
                                             reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(_variant(tmp_path, text))
    assert err.value.key == key and reason in err.value.reason
    assert err.value.file.endswith("variant.toml")


def test_a_base_must_sit_beside_and_not_be_itself(tmp_path: Path) -> None:
    path = tmp_path / "self.toml"
    path.write_text('base = "self.toml"\n')
    with pytest.raises(ConfigError, match="its own base"):
        load(path)


# ---------------------------------------------------------------- hostile values
def _fails(path: Path, key: str, reason: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(path, data_dir=path.parent / "var")
    err = info.value
    assert err.key == key, str(err)
    assert re.search(reason, err.reason), str(err)
    assert "\n" not in str(err) and str(err).endswith(err.reason)
    return err


@pytest.mark.parametrize("zone", ["Asia/Manilla", "../etc", "", "/etc/passwd", "Asia/",
                                  "Asia", "Asia/Manila\\n", "zone.tab", "UTC\\u0000"])
def test_an_unknown_time_zone_fails_at_load(tmp_path: Path, zone: str) -> None:
    err = _fails(_variant(tmp_path, f'[kiosk]\ntimezone = "{zone}"\n'), "kiosk.timezone",
                 r"unknown time zone")
    assert err.file.endswith("variant.toml")


def test_a_real_time_zone_loads(tmp_path: Path) -> None:
    assert load(_variant(tmp_path, '[kiosk]\ntimezone = "Europe/Berlin"\n')).timezone == \
        "Europe/Berlin"


# (table, key, driver line) of every duration in seconds: a float, finite and above 0.
SECONDS = [
    ("backend", "query_interval_s", ""),
    ("backend", "offers_ttl_s", ""),
    ("wallet", "timeout_s", ""),
    ("cash", "transient_timeout_s", ""),
    ("cash", "escrow_timeout_s", ""),
    ("card", "t1_s", ""), ("card", "t3_s", ""), ("card", "t4_s", ""),
    ("printer", "status_timeout_s", ""), ("printer", "poll_s", ""),
    ("sim_reader", "delay_s", 'driver = "simulated"\n'),
]


@pytest.mark.parametrize("value", ["nan", "-nan", "inf", "+inf", "-inf", "-1", "-0.5", "0",
                                   "0.0", "1e300", "true", '"5"', "2026-01-01", "[1]",
                                   "{ a = 1 }", "0x" + "f" * 400])
@pytest.mark.parametrize(("table", "key", "driver"), SECONDS,
                         ids=[f"{t}.{k}" for t, k, _ in SECONDS])
def test_a_duration_is_a_finite_number_above_zero(tmp_path: Path, table: str, key: str,
                                                  driver: str, value: str) -> None:
    if key == "delay_s" and value in ("0", "0.0"):
        assert load(_variant(tmp_path, f"[{table}]\n{driver}{key} = {value}\n"))
        return
    _fails(_variant(tmp_path, f"[{table}]\n{driver}{key} = {value}\n"), f"{table}.{key}",
           r"must be (a (finite )?number|a number of seconds)")


# (table, key, lowest allowed, driver line) of every count, limit and interval in integers.
INTEGERS = [
    ("ui", "idle_timeout_s", 10, ""), ("ui", "answer_timeout_s", 20, ""),
    ("ui", "result_timeout_s", 5, ""), ("ui", "width", 640, ""),
    ("payments", "qr_expiry_s", 30, ""), ("payments", "voucher_expiry_days", 1, ""),
    ("backend", "timeout_s", 1, ""), ("backend", "max_unknown_queries", 0, ""),
    ("backend", "minor_units", 0, ""),
    ("cash", "poll_ms", 1, ""), ("cash", "reply_timeout_ms", 1, ""), ("cash", "retries", 1, ""),
    ("printer", "width", 16, ""), ("printer", "qr_size", 1, ""),
    ("printer", "baudrate", 300, ""),
    ("sim_reader", "poll_ms", 1, 'driver = "pcsc"\n'),
    ("sim_reader", "demo_vpcd_port", 0, 'driver = "pcsc"\n'),
]


@pytest.mark.parametrize(("table", "key", "lowest", "driver"), INTEGERS,
                         ids=[f"{t}.{k}" for t, k, _, _ in INTEGERS])
def test_counts_and_limits_are_integers_in_range(tmp_path: Path, table: str, key: str,
                                                 lowest: int, driver: str) -> None:
    assert load(_variant(tmp_path, f"[{table}]\n{driver}{key} = {lowest}\n"))
    for bad in (str(lowest - 1), "-1", "nan", "inf", "1.5", "true", "10" + "0" * 30,
                "0x" + "f" * 400, '"10"', "10:00:00"):
        _fails(_variant(tmp_path, f"[{table}]\n{driver}{key} = {bad}\n"), f"{table}.{key}",
               r"must be an integer")


def test_every_numeric_driver_option_has_a_rule() -> None:
    """A new driver option that is a number is covered by a range or the seconds rule."""
    from drivers.registry import _DRIVERS, options_of
    from kiosk.config_values import INT_OPTIONS
    for kind, drivers in _DRIVERS.items():
        for driver in drivers:
            for key, default in options_of(kind, driver).items():
                if isinstance(default, bool) or key in config_mod._INTERNAL_OPTIONS:
                    continue
                if isinstance(default, int):
                    assert key in INT_OPTIONS, f"{kind}.{key} ({driver}) has no range"
                    lo, hi = INT_OPTIONS[key]
                    assert lo <= default <= hi, f"{kind}.{key}: default out of its range"
                elif isinstance(default, float):
                    assert key.endswith("_s") and 0 <= default <= 86_400, f"{kind}.{key}"


@pytest.mark.parametrize(("value", "reason"), [
    ("true", r'must be a string like "20.00", got true'),
    ("1", r'must be a string like "20.00", got 1'),
    ("1.5", r"never a float"), ("nan", r"never a float"), ("inf", r"never a float"),
    ('"-1.00"', r"not an amount"), ('"1e3"', r"not an amount"), ('"NaN"', r"not an amount"),
    ('"Infinity"', r"not an amount"), ('""', r"not an amount"),
    ('"\u0661\u0660"', r"not an amount"),                  # Arabic-Indic digits
    ('"' + "9" * 5000 + '"', r"not an amount"), ('"99999999999"', r"below 1000000000000"),
    ("2026-01-01", r"got 2026-01-01 \(a TOML date\)"), ('["1"]', r"got a list of 1"),
])
def test_money_is_an_exact_string_into_integer_minor_units(tmp_path: Path, value: str,
                                                          reason: str) -> None:
    _fails(_variant(tmp_path, f"[payments]\nmax_overpay = {value}\n"), "payments.max_overpay",
           reason)


def test_money_settings_are_plain_integers(tmp_path: Path) -> None:
    s = load(_variant(tmp_path, '[payments]\nmax_overpay = "0.50"\n'))
    assert type(s.max_overpay) is int and s.max_overpay == 50
    assert all(type(d) is int for d in s.cash_denominations)
    for p in s.catalog.products:
        assert all(type(a) is int and a > 0 for a in p.amounts)
        assert p.range_min is None or (type(p.range_min) is int and type(p.range_max) is int)


@pytest.mark.parametrize(("text", "key", "reason"), [
    ("[kiosk]\ntimezone = 2026-01-01\n", "kiosk.timezone",
     r"must be a string, got 2026-01-01 \(a TOML date\)"),
    ("[kiosk]\ntimezone = 2026-01-01T08:00:00Z\n", "kiosk.timezone",
     r"must be a string, got 2026-01-01T08:00:00\+00:00 \(a TOML date-time\)"),
    ("[kiosk]\nsite = 07:30:00\n", "kiosk.site", r"must be a string, got 07:30:00 \(a TOML time\)"),
    ("[kiosk]\nsite = [1, 2]\n", "kiosk.site", r"must be a string, got a list of 2"),
    ("[kiosk]\nsupport = { phone = 1 }\n", "kiosk.support", r"must be a string, got a table"),
    ("[kiosk]\ndemo = 1\n", "kiosk.demo", r"must be true or false, got 1"),
    ("[kiosk]\ndemo = 2026-01-01\n", "kiosk.demo", r"must be true or false"),
    ("[ui]\nfullscreen = \"yes\"\n", "ui.fullscreen", r'must be true or false, got "yes"'),
    ("[ui]\ndefault_language = [\"en\"]\n", "ui.default_language", r"must be a string"),
    ("[ui]\nlanguages = \"en\"\n", "ui.languages", r'must be a list, got "en"'),
    ("[ui]\nlanguages = [\"en\", 2026-01-01]\n", "ui.languages", r"list of strings"),
    ("[kiosk]\nid = 2026-01-01\n", "kiosk.id", r"must be a string"),
    ("[kiosk]\nid = \"K\uff10\uff10\uff10\uff11\"\n", "kiosk.id", r"letters, digits"),
    ("[cash]\ndriver = 1\n", "cash.driver", r"must be a string, got 1"),
    ("[card]\nt1_s = 2026-01-01T00:00:00\n", "card.t1_s", r"a TOML date-time"),
    ("[card]\npassword = 123456\n", "card.password", r"must be a string, got 123456"),
    ("[card]\nprint_on_ecr = 1\n", "card.print_on_ecr", r"must be true or false, got 1"),
    ("kiosk = 1\n", "kiosk", r"must be a table, got 1"),
    ("ui = [1]\n", "ui", r"must be a table, got a list of 1"),
])
def test_every_toml_type_where_another_is_expected(tmp_path: Path, text: str, key: str,
                                                  reason: str) -> None:
    _fails(_variant(tmp_path, text), key, reason)


@pytest.mark.parametrize(("text", "key", "reason"), [
    ('[kiosk]\ndata_dir = "var\\u0000x"\n', "kiosk.data_dir", r"NUL byte"),
    ('[kiosk]\ncatalog = "catalog.toml\\u0000"\n', "kiosk.catalog", r"NUL byte"),
    ('[kiosk]\nsecrets_file = "/etc/x\\u0000"\n', "kiosk.secrets_file", r"NUL byte"),
    ('[ui]\ncjk_font = "\\u0000"\n', "ui.cjk_font", r"NUL byte"),
    ('[kiosk]\ndata_dir = ""\n', "kiosk.data_dir", r"empty"),
    ('[kiosk]\ndata_dir = "var\\nx"\n', "kiosk.data_dir", r'control characters, got "var\\n'),
    ('[cash]\ndriver = "id003"\nport = "/dev/kiosk\\u0000"\n', "cash.port",
     r"control characters"),
    ('[printer]\ndriver = "escpos"\nport = "/dev/p\\u0000"\n', "printer.port",
     r"control characters"),
    ('[card]\ndriver = "zvt"\nport = "\\u0000"\n', "card.port", r"control characters"),
    ('[kiosk]\nsite = "Mall\\u001b[2J"\n', "kiosk.site", r"control characters"),
    ('[wallet]\nmerchant_name = "A\\rB"\n', "wallet.merchant_name", r"control characters"),
])
def test_paths_and_texts_hold_no_nul_or_control_characters(tmp_path: Path, text: str,
                                                           key: str, reason: str) -> None:
    _fails(_variant(tmp_path, text), key, reason)


@pytest.mark.parametrize(("text", "key", "reason"), [
    ('[card]\npassword = "12345"\n', "card.password", r"6 digits"),
    ('[card]\npassword = "\u0661\u0662\u0663\u0664\u0665\u0666"\n', "card.password", r"6 digits"),
    ('[wallet]\nbase_url = "ftp://gateway"\n', "wallet.base_url", r"http:// or https://"),
    ('[wallet]\nbase_url = "https://a b"\n', "wallet.base_url", r"http:// or https://"),
    ('[backend]\nauth_url = "token"\n', "backend.auth_url", r"http:// or https://"),
    ('[backend]\noperator_ids = 5\n', "backend.operator_ids", r"table of operator ids"),
    ('[backend.operator_ids]\nglobe = "341"\n', "backend.operator_ids", r"globe: .*\"341\""),
    ('[backend.operator_ids]\nglobe = []\n', "backend.operator_ids", r"non-empty list"),
    ('[backend.operator_ids]\nglobe = [1, -2]\n', "backend.operator_ids", r"positive"),
    ('[backend.operator_ids]\nglobe = true\n', "backend.operator_ids", r"got true"),
    ('[backend.operator_ids]\nglobe = 0x' + "f" * 40 + "\n", "backend.operator_ids",
     r"positive"),
    ('[sim_reader]\ndriver = "pcsc"\nreader = "a{99999999999}"\n', "sim_reader.reader",
     r"not a valid regular expression"),
    ('[sim_reader]\ndriver = "pcsc"\nreader = "' + "(" * 3000 + '"\n', "sim_reader.reader",
     r"not a valid regular expression"),
])
def test_driver_option_values_that_would_fail_at_start(tmp_path: Path, text: str, key: str,
                                                       reason: str) -> None:
    _fails(_variant(tmp_path, text), key, reason)


def test_a_key_with_a_newline_is_one_escaped_line(tmp_path: Path) -> None:
    err = _fails(_variant(tmp_path, '[kiosk]\n"evil\\nkey" = 1\n'), "kiosk.evil\\nkey",
                 r"unknown key")
    assert "evil\\nkey" in str(err)


# ---------------------------------------------------------------- base chains
def test_a_base_cycle_is_named(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('base = "b.toml"\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\n')
    err = _fails(tmp_path / "a.toml", "base", r"^cycle a\.toml -> b\.toml -> a\.toml$")
    assert err.file == str(tmp_path / "b.toml")


def test_a_longer_base_cycle_is_named(tmp_path: Path) -> None:
    for name, base in (("a", "b"), ("b", "c"), ("c", "b")):
        (tmp_path / f"{name}.toml").write_text(f'base = "{base}.toml"\n')
    _fails(tmp_path / "a.toml", "base", r"^cycle b\.toml -> c\.toml -> b\.toml$")


def test_a_base_chain_without_a_cycle_loads(tmp_path: Path) -> None:
    _variant(tmp_path, "")
    (tmp_path / "second.toml").write_text('base = "variant.toml"\n[ui]\nidle_timeout_s = 90\n')
    assert load(tmp_path / "second.toml").ui.idle_timeout_s == 90


@pytest.mark.parametrize("base", ['""', '"."', '".."', '"sub/kiosk.toml"', "1", "[]",
                                  '"kiosk.toml\\u0000"'])
def test_a_base_is_a_file_name(tmp_path: Path, base: str) -> None:
    (tmp_path / "v.toml").write_text(f"base = {base}\n")
    _fails(tmp_path / "v.toml", "base", r"name of a file in the same folder")


# ---------------------------------------------------------------- files
def test_a_file_that_is_not_utf8_names_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    data = '[kiosk]\nsite = "Caf\u00e9"\n'.encode("latin-1")
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.file == str(path) and info.value.key == ""
    assert info.value.reason == f"not UTF-8 text (byte {data.index(0xE9)})"
    assert data.index(0xE9) == 19


def test_a_catalog_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    _write_configs(tmp_path, None)
    (tmp_path / "catalog.toml").write_bytes(b"\xff\xfe" + b"currency = 1")
    with pytest.raises(ConfigError, match=r"catalog\.toml: not UTF-8 text \(byte 0\)$"):
        load(tmp_path / "kiosk.toml")


@pytest.mark.parametrize(("make", "reason"), [
    (lambda d: d, r"is a directory, not a file"),
    (lambda d: d / "kiosk.toml" / "below", r"cannot read: Not a directory"),
    (lambda d: d / "missing.toml", r"file not found"),
    (lambda d: Path(str(d) + "/k\x00.toml"), r"NUL byte"),
])
def test_a_path_that_is_not_a_readable_file(tmp_path: Path, make: Any, reason: str) -> None:
    _write_configs(tmp_path, None)
    with pytest.raises(ConfigError) as info:
        load(make(tmp_path))
    assert re.search(reason, info.value.reason) and "\n" not in str(info.value)


def test_a_pipe_or_device_is_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)                          # opening it to read must not wait for a writer
    with pytest.raises(ConfigError, match="not a regular file"):
        load(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load("/dev/zero")


def test_a_file_larger_than_a_config_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text("# " + "x" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        load(path)


def test_an_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root reads a mode-000 file anyway; the error the kernel gives others is simulated."""
    path = _write_configs(tmp_path, None)
    real_open = os.open

    def denied(p: Any, flags: int, *args: Any) -> int:
        if Path(p) == path:
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(p, flags, *args)
    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value) == f"{path}: cannot read: Permission denied"


@pytest.mark.parametrize(("text", "reason"), [
    ("a = " + "[" * 5000 + "]" * 5000 + "\n", r"nested too deeply"),
    ("a = " + "9" * 5000 + "\n", r"not valid TOML: .*digits"),
    ("a = 2026-02-30\n", r"not valid TOML"),
])
def test_toml_the_parser_cannot_take(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "k.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert re.search(reason, info.value.reason) and "\n" not in str(info.value)
