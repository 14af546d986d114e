"""config/kiosk.toml + catalog.toml: the default loads; every defect names file, key, reason."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

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
    assert s.ui.languages == ("en", "zh_CN")
    assert set(s.devices) == {"sim_reader", "cash", "card", "printer", "backend", "wallet"}
    assert {n: d.driver for n, d in s.devices.items()} == {
        "sim_reader": "simulated", "cash": "id003-sim", "card": "zvt-sim",
        "printer": "escpos-sim", "backend": "reloadly", "wallet": "http"}
    assert "port" not in s.devices["cash"].options       # the simulator provides it
    assert s.data_dir == tmp_path
    assert s.journal_path == tmp_path / "journal.sqlite3"
    assert len(s.catalog.products) == 14


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
    Defect("duplicate_prefix", "catalog.toml", r'^prefixes = \["0907"',
           'prefixes = ["0917", "0907"',
           "catalog.toml", "operators", r"prefix 0917 belongs to both luzon and isla"),
    Defect("unknown_operator", "catalog.toml", r'^(id = "luzon-load"\n)operator = "luzon"',
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
    Defect("duplicate_product", "catalog.toml", r'^id = "isla-load"$', 'id = "luzon-load"',
           "catalog.toml", "products[7].id", r"duplicate product 'luzon-load'"),
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
    assert s.kiosk_id == "K0001" and len(s.catalog.operators) == 3


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
