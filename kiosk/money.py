"""Money as integers in minor units (centavos, fen) with an ISO 4217 currency.

Never a float: amounts come in as ints or as exact decimal strings ("20.00"), and are
formatted back with the currency's exponent.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

# ISO 4217: alpha code -> (numeric code, minor-unit exponent). Extend as the kiosk is deployed.
CURRENCIES: dict[str, tuple[int, int]] = {
    "PHP": (608, 2),
    "CNY": (156, 2),
    "THB": (764, 2),
    "IDR": (360, 2),
    "USD": (840, 2),
    "EUR": (978, 2),
    "JPY": (392, 0),
}

_DECIMAL = re.compile(r"^(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?$")   # ASCII digits only


class MoneyError(ValueError):
    """An amount or currency that cannot be represented exactly."""


def exponent(currency: str) -> int:
    try:
        return CURRENCIES[currency][1]
    except KeyError:
        raise MoneyError(f"unknown currency {currency!r}") from None


def parse_minor(text: str, currency: str) -> int:
    """'20.00' -> 2000 for PHP. Rejects anything that is not an exact amount."""
    if not isinstance(text, str):
        raise MoneyError(f"amount must be a string like \"20.00\", got {type(text).__name__}")
    m = _DECIMAL.match(text.strip())
    if not m:
        raise MoneyError(f"not an amount: {text!r}")
    exp = exponent(currency)
    frac = m.group("frac") or ""
    if len(frac) > exp:
        if frac[exp:].strip("0"):
            raise MoneyError(f"{text!r} has more decimals than {currency} allows ({exp})")
        frac = frac[:exp]
    return int(m.group("int")) * 10**exp + int(frac.ljust(exp, "0") or "0")


@functools.total_ordering
@dataclass(frozen=True)
class Money:
    minor: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.minor, int) or isinstance(self.minor, bool):
            raise MoneyError(f"money must be an integer number of minor units, got {self.minor!r}")
        exponent(self.currency)

    @classmethod
    def parse(cls, text: str, currency: str) -> Money:
        return cls(parse_minor(text, currency), currency)

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money) or other.currency != self.currency:
            raise MoneyError(f"cannot combine {self} with {other}")

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor < other.minor

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def decimal_text(self) -> str:
        exp = exponent(self.currency)
        sign = "-" if self.minor < 0 else ""
        whole, frac = divmod(abs(self.minor), 10**exp)
        return f"{sign}{whole:,}" + (f".{frac:0{exp}d}" if exp else "")

    def __str__(self) -> str:
        return f"{self.currency} {self.decimal_text()}"


SYMBOLS = {"PHP": "₱", "CNY": "¥", "THB": "฿", "USD": "$", "EUR": "€", "JPY": "¥"}


def fmt(minor: int, currency: str) -> str:
    """'PHP 50.00': plain ASCII, for receipts and logs."""
    return str(Money(minor, currency))


def display(minor: int, currency: str) -> str:
    """'₱50.00': for the screen."""
    m = Money(minor, currency)
    sym = SYMBOLS.get(currency)
    return f"{sym}{m.decimal_text()}" if sym else str(m)
