"""Checks on configuration input, so that every bad file or value is one line
`FILE: KEY: REASON` (a ConfigError), never a traceback.

Reading a file: a regular file of at most 1 MiB, UTF-8 text, valid TOML. Values: each TOML
type is told apart (a bool is not an integer, a date-time is not a date), numbers are
finite and within range, paths and driver options hold no control characters, the time
zone exists, money parses exactly into integer minor units.
"""

from __future__ import annotations

import math
import os
import re
import stat
import tomllib
from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .money import MoneyError, parse_minor

MAX_FILE_BYTES = 1 << 20            # a configuration file is small; /dev/zero is not one
MAX_SECONDS = 86_400                # no wait in the kiosk is longer than a day
MAX_MINOR = 10**12                  # an amount in minor units stays below this
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escaped(text: str, limit: int = 0) -> str:
    """Control characters as visible escapes (\\n, \\x1b); cut to `limit` characters."""
    if limit and len(text) > limit:
        text = text[:limit] + "..."
    return CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class ConfigError(Exception):
    """One line: FILE: KEY: REASON (control characters in any part are escaped)."""

    def __init__(self, file: Path | str, key: str, reason: str) -> None:
        self.file = str(file)
        self.key, self.reason = escaped(key, 120), escaped(reason, 600)
        where = escaped(self.file)
        super().__init__(f"{where}: {self.key}: {self.reason}" if key else
                         f"{where}: {self.reason}")


def type_name(k: type) -> str:
    return {str: "a string", int: "an integer", bool: "true or false", list: "a list",
            dict: "a table", float: "a number", date: "a date (YYYY-MM-DD)",
            datetime: "a date-time", time: "a time of day"}.get(k, k.__name__)


def show(v: Any) -> str:
    """A value for an error message: short, one line, whatever its type or size."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + escaped(v, 60) + '"'
    if isinstance(v, int):
        return str(v) if v.bit_length() <= 64 else f"an integer of {v.bit_length()} bits"
    if isinstance(v, float):
        return f"{v!r} (a float)"
    for kind, name in ((datetime, "date-time"), (date, "date"), (time, "time")):
        if isinstance(v, kind):
            return f"{v.isoformat()} (a TOML {name})"
    if isinstance(v, list):
        return f"a list of {len(v)}"
    if isinstance(v, dict):
        return "a table"
    return type(v).__name__


def is_kind(v: Any, kinds: tuple[type, ...]) -> bool:
    """isinstance, except that a bool is only a bool and a date-time is not a date."""
    if object in kinds:
        return True
    if isinstance(v, bool):
        return bool in kinds
    if isinstance(v, datetime):
        return datetime in kinds
    return isinstance(v, kinds)


# ---------------------------------------------------------------- files
def read_file(path: Path) -> tuple[bytes, os.stat_result]:
    """The bytes of a regular file and its status, or a ConfigError saying why not."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except ValueError:
        raise ConfigError(path, "", "the path contains a NUL byte") from None
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError(path, "", "is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(path, "", "not a regular file")
        data = b""
        while len(data) <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(path, "", f"larger than {MAX_FILE_BYTES} bytes")
    return data, st


def utf8_text(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(path, "", f"not UTF-8 text (byte {exc.start})") from None


def parse_toml(path: Path, data: bytes) -> dict[str, Any]:
    text = utf8_text(path, data)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(path, "", "not valid TOML: nested too deeply") from None
    except ValueError as exc:           # e.g. an integer of more than 4300 digits
        raise ConfigError(path, "", f"not valid TOML: {exc}") from None


def read_toml(path: Path) -> dict[str, Any]:
    return parse_toml(path, read_file(path)[0])


# ---------------------------------------------------------------- single values
Fail = Callable[[str], ConfigError]


def seconds(fail: Fail, v: Any, *, zero_ok: bool = False, hi: float = MAX_SECONDS) -> float:
    """A finite number of seconds above 0 (or from 0) up to `hi`."""
    if not is_kind(v, (int, float)):
        raise fail(f"must be a number of seconds, got {show(v)}")
    if isinstance(v, float) and not math.isfinite(v):
        raise fail(f"must be a finite number, got {show(v)}")
    if v < 0 or (v == 0 and not zero_ok) or v > hi:
        low = "from 0" if zero_ok else "above 0"
        raise fail(f"must be a number of seconds {low} up to {hi:g}, got {show(v)}")
    return float(v)


def integer(fail: Fail, v: Any, lo: int, hi: int) -> int:
    if not is_kind(v, (int,)) or not lo <= v <= hi:
        raise fail(f"must be an integer from {lo} to {hi}, got {show(v)}")
    return int(v)


def text(fail: Fail, v: str, *, path: bool = False) -> str:
    """A path (not empty) or a text for people: no NUL byte or other control character."""
    if path and not v:
        raise fail("must be a path, got an empty string")
    if "\x00" in v:
        raise fail("must not contain a NUL byte")
    if CONTROL.search(v):
        raise fail(f"must not contain control characters, got {show(v)}")
    return v


def time_zone(fail: Fail, v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise fail(f"unknown time zone {show(v)} (an IANA name like \"Asia/Manila\")") from None
    return v


def money(fail: Fail, v: Any, currency: str, *, zero_ok: bool = False) -> int:
    """A money string ("20.00") as integer minor units, above 0 (or from 0), below MAX_MINOR."""
    if isinstance(v, float):
        raise fail(f"must be a string like \"20.00\" (money is never a float), got {show(v)}")
    if not isinstance(v, str):
        raise fail(f"must be a string like \"20.00\", got {show(v)}")
    if len(v.strip()) > 24:
        raise fail(f"not an amount: {show(v)}")
    try:
        minor = parse_minor(v, currency)
    except MoneyError as exc:
        raise fail(str(exc)) from None
    if minor >= MAX_MINOR or (minor == 0 and not zero_ok):
        raise fail(f"must be {'from 0' if zero_ok else 'above 0'} and below {MAX_MINOR} "
                   f"minor units, got {show(v)}")
    return minor


# ---------------------------------------------------------------- driver options
# Integer options and their ranges; every float option is a number of seconds.
INT_OPTIONS: dict[str, tuple[int, int]] = {
    "poll_ms": (1, 60_000), "reply_timeout_ms": (1, 60_000), "retries": (1, 100),
    "baudrate": (300, 4_000_000), "width": (16, 255), "qr_size": (1, 16),
    "minor_units": (0, 4), "demo_vpcd_port": (0, 65_535),
}
ZERO_OK_SECONDS = {"delay_s"}       # a simulated device may answer at once
URL_OPTIONS = {"base_url", "auth_url"}
_URL = re.compile(r"https?://[^\s/?#@]+(?:[/?#]\S*)?")


def check_option(fail: Fail, key: str, value: Any, default: Any, *, secret: bool = False) -> None:
    """One driver option against its default's type and the rules above. A secret's value
    is never shown."""
    if isinstance(default, (int, float, str)) and not (
            type(value) is type(default)
            or (type(default) is float and is_kind(value, (int,)))):
        got = "" if secret else f", got {show(value)}"
        raise fail(f"must be {type_name(type(default))}{got}")
    if isinstance(default, float):
        seconds(fail, value, zero_ok=key in ZERO_OK_SECONDS)
    elif key in INT_OPTIONS:
        integer(fail, value, *INT_OPTIONS[key])
    elif isinstance(value, str):
        if CONTROL.search(value):
            raise fail("must not contain control characters"
                       + ("" if secret else f", got {show(value)}"))
        if key == "password" and not (len(value) == 6 and value.isascii() and value.isdigit()):
            raise fail("must be exactly 6 digits")
        if key in URL_OPTIONS and value and not _URL.fullmatch(value):
            raise fail(f"must be an http:// or https:// URL, got {show(value)}")
        if key == "reader":
            try:
                re.compile(value)
            except (re.error, RecursionError, OverflowError) as exc:
                raise fail(f"not a valid regular expression: {exc}") from None
    elif key == "operator_ids":
        operator_ids(fail, value)


def operator_ids(fail: Fail, value: Any) -> None:
    """A table: kiosk operator id -> a provider operator id, or a non-empty list of them."""
    if not isinstance(value, dict):
        raise fail(f"must be a table of operator ids, got {show(value)}")
    for op, ids in value.items():
        for one in ids if isinstance(ids, list) and ids else [ids]:
            if not is_kind(one, (int,)) or not 0 < one < 2**63:
                raise fail(f"{escaped(op, 40)}: must be a positive integer or a non-empty "
                           f"list of them, got {show(ids)}")


# ---------------------------------------------------------------- tables
class Table:
    """Typed access to one TOML table; remembers which keys were read."""

    def __init__(self, file: Path, prefix: str, data: Any) -> None:
        self.file, self.prefix = file, prefix
        if not isinstance(data, dict):
            raise ConfigError(file, prefix, f"must be a table, got {show(data)}")
        self.data = data
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, reason: str) -> ConfigError:
        return ConfigError(self.file, self.key(name), reason)

    def fail(self, name: str) -> Fail:
        return lambda reason: self.error(name, reason)

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = ..., *,
            choices: tuple[Any, ...] = (), lo: int | None = None, hi: int | None = None) -> Any:
        self.seen.add(name)
        if name not in self.data:
            if default is ...:
                raise self.error(name, "is required")
            return default
        v = self.data[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not is_kind(v, kinds):
            want = " or ".join(type_name(k) for k in kinds)
            raise self.error(name, f"must be {want}, got {show(v)}")
        if choices and v not in choices:
            raise self.error(name, f"must be one of {', '.join(map(str, choices))}, got {show(v)}")
        if isinstance(v, int) and not isinstance(v, bool) and (
                (lo is not None and v < lo) or (hi is not None and v > hi)):
            raise self.error(name, f"must be an integer from {lo} to {hi}, got {show(v)}")
        return v

    def seconds(self, name: str, default: float, *, hi: float = MAX_SECONDS) -> float:
        return seconds(self.fail(name), self.get(name, object, default), hi=hi)

    def path(self, name: str, default: str) -> str:
        return text(self.fail(name), self.get(name, str, default), path=True)

    def text(self, name: str, default: str) -> str:
        return text(self.fail(name), self.get(name, str, default))

    def str_list(self, name: str, default: Any = ...) -> list[str]:
        v = self.get(name, list, default)
        if any(not isinstance(x, str) for x in v):
            raise self.error(name, "must be a list of strings")
        return list(v)

    def str_table(self, name: str) -> dict[str, str]:
        v = self.get(name, dict, {})
        if any(not isinstance(x, str) for x in v.values()):
            raise self.error(name, "must be a table of strings")
        return dict(v)

    def money(self, name: str, currency: str, default: Any = ..., *,
              zero_ok: bool = False) -> int:
        return money(self.fail(name), self.get(name, object, default), currency,
                     zero_ok=zero_ok)

    def table(self, name: str, required: bool = False) -> Table:
        self.seen.add(name)
        if name not in self.data and required:
            raise self.error(name, "table is required")
        return Table(self.file, self.key(name), self.data.get(name, {}))

    def done(self) -> None:
        extra = sorted(set(self.data) - self.seen)
        if extra:
            raise self.error(extra[0], "unknown key (misspelt?)")
