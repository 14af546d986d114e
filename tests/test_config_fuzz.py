"""Hostile configuration files: load() gives Settings or a one-line ConfigError, never another
exception; `kiosk config check` prints one `FILE: KEY: REASON` line and exits 2.

The documents are built from the real config's tables and keys (and every driver's
options), with values of every TOML type: NaN, infinities, huge and negative integers,
empty strings, NUL and other control characters, non-ASCII text, dates, times, lists and
nested tables. Random bytes stand in for files that are not TOML at all.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import subprocess
import sys
import tomllib
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.registry import known_drivers, options_of
from kiosk.config import DEFAULT_CONFIG, DEVICES, ConfigError, Settings, load
from kiosk.secrets_source import SPECS

ROOT = DEFAULT_CONFIG.parent.parent
REAL = tomllib.loads(DEFAULT_CONFIG.read_text(encoding="utf-8"))
CATALOG = tomllib.loads((DEFAULT_CONFIG.parent / "catalog.toml").read_text(encoding="utf-8"))
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------- writing TOML
class Raw(str):
    """A TOML fragment written as it is (values Python cannot hold as themselves)."""


def toml_string(s: str) -> str:
    # JSON escapes ", \ and C0 controls the way TOML does; TOML also wants DEL escaped.
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(v: Any) -> str:
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, (datetime, date, time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_document(doc: dict[str, Any]) -> str:
    """Top-level keys one per line; tables and arrays of tables written inline."""
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in doc.items())


# ---------------------------------------------------------------- hostile values
HOSTILE_STRINGS = ["", "\x00", "a\x00b", "../etc", "/", ".", "Asia/Manilla", "a\nb", "\r\n",
                   "\x1b[2J", "\u2028", "\u202e", "\U0001d7d8", "K\uff10", " ", "nan", "inf",
                   "-1", "1e999", "99999999999999999999999", "0.001", "20.00", "x" * 5000,
                   "Asia/Manila\n", "/dev/zero", "kiosk.toml", "catalog.toml", "(((", "a{99999999}"]
HOSTILE_NUMBERS = [math.nan, -math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, 1e308, 5e-324,
                   0, -1, 2**63, -(2**63) - 1, 10**30, 16**400, True, False]
RAW = [Raw("0x" + "f" * 400), Raw("9" * 5000), Raw("-0"), Raw("+inf"), Raw("-nan"),
       Raw("1979-05-27T07:32:00-08:00"), Raw("07:32:00"), Raw("1979-05-27"),
       Raw("[" * 300 + "]" * 300), Raw("{ a = { b = { c = [1, [2, [3]]] } } }")]

plain_scalars = st.one_of(
    st.sampled_from(HOSTILE_STRINGS), st.sampled_from(HOSTILE_NUMBERS),
    st.integers(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.text(max_size=40),
    st.dates(), st.datetimes(), st.datetimes(timezones=st.just(UTC)), st.times())


def nested(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                st.dictionaries(st.text(max_size=8), inner, max_size=4)),
        max_leaves=8)


plain_values = nested(plain_scalars)                  # what Python holds as itself
values = nested(st.one_of(plain_scalars, st.sampled_from(RAW)))
# Values near the edges of what is accepted, so that some documents load and the Settings
# they give are checked too.
borderline = st.one_of(st.integers(-2, 70_000), st.floats(-1.0, 100_000.0), st.booleans(),
                       st.sampled_from(["0", "0.01", "20.00", "UTC", "Asia/Manila", "var",
                                        "/dev/ttyS0", "000000", "http://127.0.0.1:1", ".*"]))


def _table_keys() -> dict[str, list[str]]:
    """Every key the real config has, plus every option of every driver of each device."""
    keys = {t: sorted(v) for t, v in REAL.items() if isinstance(v, dict)}
    keys["kiosk"] = sorted({*keys["kiosk"], "secrets_file"})
    for kind in DEVICES:
        opts = {k for d in known_drivers(kind) for k in options_of(kind, d)}
        keys[kind] = sorted({*keys.get(kind, []), "driver", *opts, "operator_ids"})
    keys["nonsense"] = ["x"]
    return keys


TABLE_KEYS = _table_keys()


@st.composite
def variants(draw: st.DrawFn) -> dict[str, Any]:
    """`base = "kiosk.toml"` with a few keys set to hostile values (and sometimes a real
    driver chosen, so that its own options are checked)."""
    doc: dict[str, Any] = {"base": "kiosk.toml"}
    for _ in range(draw(st.integers(1, 5))):
        table = draw(st.sampled_from(sorted(TABLE_KEYS)))
        if draw(st.integers(0, 20)) == 0:
            doc[table] = draw(values)                    # a whole table as something else
            continue
        t = doc.setdefault(table, {})
        if not isinstance(t, dict):
            continue
        if table in DEVICES and draw(st.booleans()):
            t["driver"] = draw(st.sampled_from(known_drivers(table)))
        t[draw(st.sampled_from(TABLE_KEYS[table]))] = draw(st.one_of(values, borderline))
    if draw(st.integers(0, 15)) == 0:
        doc["base"] = draw(values)
    return doc


@st.composite
def catalogs(draw: st.DrawFn) -> dict[str, Any]:
    """The real catalog with a few of its values (top level, operators, products) hostile."""
    doc = copy.deepcopy(CATALOG)
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(["top", "operators", "products"]))
        if where == "top":
            doc[draw(st.sampled_from([*CATALOG, "extra"]))] = draw(values)
            continue
        items = doc[where]
        if not isinstance(items, list) or not items:
            continue
        i = draw(st.integers(0, len(items) - 1))
        keys = sorted({k for item in CATALOG[where] for k in item} | {"min", "max", "step",
                                                                     "price", "amounts"})
        if isinstance(items[i], dict):
            items[i][draw(st.sampled_from(keys))] = draw(values)
        else:
            items[i] = draw(values)
    return doc


# ---------------------------------------------------------------- the property
def _check(path: Path) -> Settings | None:
    """load() either gives Settings that are safe to start with, or one ConfigError line."""
    try:
        s = load(path, data_dir=path.parent / "var")
    except ConfigError as err:
        line = str(err)
        assert "\n" not in line and "\r" not in line and "\x00" not in line, line
        assert line.endswith(err.reason) and len(line) < 5000
        return None
    ZoneInfo(s.timezone)                                # would have crashed the kiosk's start
    assert math.isfinite(s.query_interval_s) and s.query_interval_s > 0
    assert type(s.max_overpay) is int and s.max_overpay >= 0
    assert all(type(d) is int and d > 0 for d in s.cash_denominations)
    assert "\x00" not in str(s.data_dir) and "\x00" not in s.ui.cjk_font
    for dev in s.devices.values():
        for key, value in dev.options.items():
            if isinstance(value, float):
                assert math.isfinite(value) and value >= 0, (key, value)
            if isinstance(value, str):
                assert "\x00" not in value, key
    return s


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("fuzz")
    for name in ("kiosk.toml", "catalog.toml"):
        shutil.copy(DEFAULT_CONFIG.parent / name, d / name)
    return d


@pytest.fixture(autouse=True)
def no_outside_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ["CREDENTIALS_DIRECTORY"] + [s.env for s in SPECS]:
        monkeypatch.delenv(var, raising=False)


@given(v=plain_values)
@FUZZ
def test_the_toml_writer_round_trips(v: Any) -> None:
    """The generator writes what it means: otherwise every example would just be bad TOML."""
    back = tomllib.loads(f"v = {toml_value(v)}\n")["v"]
    assert json.dumps(back, default=str) == json.dumps(v, default=str) or _has_nan(v)


def _has_nan(v: Any) -> bool:
    if isinstance(v, float):
        return math.isnan(v)
    if isinstance(v, list):
        return any(_has_nan(x) for x in v)
    if isinstance(v, dict):
        return any(_has_nan(x) for x in v.values())
    return False


@given(doc=variants())
@FUZZ
def test_hostile_values_in_the_real_keys(folder: Path, doc: dict[str, Any]) -> None:
    path = folder / "variant.toml"
    path.write_text(toml_document(doc), encoding="utf-8")
    _check(path)


@given(doc=catalogs())
@FUZZ
def test_hostile_values_in_the_catalog(folder: Path, doc: dict[str, Any]) -> None:
    cat = folder / "cat"
    cat.mkdir(exist_ok=True)
    shutil.copy(folder / "kiosk.toml", cat / "kiosk.toml")
    (cat / "catalog.toml").write_text(toml_document(doc), encoding="utf-8")
    _check(cat / "kiosk.toml")


@given(doc=st.dictionaries(st.sampled_from([*REAL, "base", "x"]), values, max_size=6))
@FUZZ
def test_hostile_whole_documents(folder: Path, doc: dict[str, Any]) -> None:
    path = folder / "whole.toml"
    path.write_text(toml_document(doc), encoding="utf-8")
    _check(path)


@given(data=st.one_of(
    st.binary(max_size=300),
    st.builds(lambda head, tail: head + tail,
              st.sampled_from([b"", b"[kiosk]\n", b'base = "kiosk.toml"\n', b"\xef\xbb\xbf"]),
              st.binary(max_size=100)),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))))
@FUZZ
def test_random_bytes(folder: Path, data: bytes) -> None:
    path = folder / "bytes.toml"
    path.write_bytes(data)
    _check(path)


def test_the_unchanged_copy_passes_the_same_property(folder: Path) -> None:
    assert _check(folder / "kiosk.toml") is not None


# ---------------------------------------------------------------- kiosk config check
def _config_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiosk.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


BAD_FILES = [
    ("timezone", 'base = "kiosk.toml"\n[kiosk]\ntimezone = "Asia/Manilla"\n',
     "kiosk.timezone", "unknown time zone"),
    ("nan", 'base = "kiosk.toml"\n[backend]\nquery_interval_s = nan\n',
     "backend.query_interval_s", "must be a finite number, got nan"),
    ("date", 'base = "kiosk.toml"\n[kiosk]\nsite = 2026-01-01\n',
     "kiosk.site", "must be a string, got 2026-01-01 (a TOML date)"),
    ("nul", 'base = "kiosk.toml"\n[kiosk]\ndata_dir = "var\\u0000"\n',
     "kiosk.data_dir", "NUL byte"),
    ("newline_key", 'base = "kiosk.toml"\n[ui]\n"idle\\ntimeout" = 1\n',
     "ui.idle\\ntimeout", "unknown key"),
    ("huge", 'base = "kiosk.toml"\n[cash]\npoll_ms = 0x' + "f" * 400 + "\n",
     "cash.poll_ms", "must be an integer from 1 to 60000"),
]


@pytest.mark.parametrize(("name", "text", "key", "reason"), BAD_FILES,
                         ids=[b[0] for b in BAD_FILES])
def test_config_check_prints_one_line_and_exits_2(folder: Path, name: str, text: str, key: str,
                                                  reason: str) -> None:
    path = folder / f"check-{name}.toml"
    path.write_text(text, encoding="utf-8")
    r = _config_check("--config", str(path), "config", "check")
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"kiosk: configuration error: {path}: {key}: ")
    assert reason in lines[0]


def test_config_check_of_a_base_cycle_and_of_bytes(folder: Path) -> None:
    (folder / "a.toml").write_text('base = "b.toml"\n')
    (folder / "b.toml").write_text('base = "a.toml"\n')
    data = b'[kiosk]\nsite = "\xff"\n'
    (folder / "bytes.toml").write_bytes(data)
    r = _config_check("config", "check", str(folder / "a.toml"))       # the path as argument
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr.splitlines() == [
        f"kiosk: configuration error: {folder / 'b.toml'}: base: cycle a.toml -> b.toml -> a.toml"]
    r = _config_check("--config", str(folder / "bytes.toml"), "config", "check")
    assert (r.returncode, r.stdout) == (2, "")
    where = data.index(0xFF)
    assert r.stderr.splitlines() == [
        f"kiosk: configuration error: {folder / 'bytes.toml'}: not UTF-8 text (byte {where})"]


def test_config_check_json_names_file_key_and_reason(folder: Path) -> None:
    path = folder / "json.toml"
    path.write_text('base = "kiosk.toml"\n[card]\nt1_s = -inf\n', encoding="utf-8")
    r = _config_check("--config", str(path), "config", "check", "--json")
    assert r.returncode == 2
    out = json.loads(r.stdout)
    assert out == {"ok": False, "file": str(path), "key": "card.t1_s",
                   "reason": "must be a finite number, got -inf (a float)"}
