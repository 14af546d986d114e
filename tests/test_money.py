"""Money is int minor units: exact parsing, no floats, no mixed currencies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.money import CURRENCIES, Money, MoneyError, exponent, fmt, parse_minor


@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("20.00", "PHP", 2000),
    ("20", "PHP", 2000),
    ("20.5", "PHP", 2050),
    ("0.01", "PHP", 1),
    ("0", "PHP", 0),
    ("1000.00", "PHP", 100000),
    ("20.010", "PHP", 2001),          # trailing zeros beyond the exponent are exact
    (" 20.00 ", "PHP", 2000),
    ("100", "JPY", 100),
    ("100.000", "JPY", 100),
])
def test_parse_minor_exact(text: str, currency: str, minor: int) -> None:
    got = parse_minor(text, currency)
    assert got == minor
    assert type(got) is int


@pytest.mark.parametrize("text", [
    "20.001", "abc", "", " ", "20,00", "1e3", "-5", "+5", "20.", ".5", "20.0.0", "NaN", "0x10",
])
def test_parse_minor_rejects_inexact_or_garbage(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_minor(text, "PHP")


def test_parse_minor_rejects_sub_unit_for_zero_exponent_currency() -> None:
    with pytest.raises(MoneyError):
        parse_minor("100.5", "JPY")


@pytest.mark.parametrize("value", [20.0, 20.5, 0.1, 2000, None, b"20.00"])
def test_parse_minor_rejects_non_strings(value: object) -> None:
    with pytest.raises(MoneyError, match="string"):
        parse_minor(value, "PHP")  # type: ignore[arg-type]


def test_unknown_currency() -> None:
    with pytest.raises(MoneyError, match="XXX"):
        parse_minor("1.00", "XXX")
    with pytest.raises(MoneyError):
        Money(100, "XXX")
    with pytest.raises(MoneyError):
        exponent("php")


@pytest.mark.parametrize("minor", [1.0, 20.5, True, False, "100", None])
def test_money_refuses_non_int(minor: object) -> None:
    with pytest.raises(MoneyError):
        Money(minor, "PHP")  # type: ignore[arg-type]


def test_money_arithmetic_same_currency() -> None:
    a, b = Money(2000, "PHP"), Money(550, "PHP")
    assert a + b == Money(2550, "PHP")
    assert a - b == Money(1450, "PHP")
    assert b - a == Money(-1450, "PHP")
    assert isinstance((a + b).minor, int)


def test_money_arithmetic_refuses_mixed_currencies() -> None:
    with pytest.raises(MoneyError):
        Money(2000, "PHP") + Money(2000, "USD")
    with pytest.raises(MoneyError):
        Money(2000, "PHP") - Money(1, "CNY")


@pytest.mark.parametrize("other", [1, 1.5, 0.0, "1.00", None])
def test_money_arithmetic_refuses_bare_numbers(other: object) -> None:
    with pytest.raises(MoneyError):
        Money(2000, "PHP") + other  # type: ignore[operator]
    with pytest.raises(MoneyError):
        Money(2000, "PHP") - other  # type: ignore[operator]


@pytest.mark.parametrize(("minor", "currency", "text"), [
    (2000, "PHP", "PHP 20.00"),
    (5, "PHP", "PHP 0.05"),
    (0, "PHP", "PHP 0.00"),
    (123456789, "PHP", "PHP 1,234,567.89"),
    (-1450, "PHP", "PHP -14.50"),
    (-5, "USD", "USD -0.05"),
    (1000, "JPY", "JPY 1,000"),
    (7, "JPY", "JPY 7"),
])
def test_formatting(minor: int, currency: str, text: str) -> None:
    assert str(Money(minor, currency)) == text
    assert fmt(minor, currency) == text


def test_money_parse_constructor() -> None:
    assert Money.parse("99.00", "PHP") == Money(9900, "PHP")
    with pytest.raises(MoneyError):
        Money.parse("99.999", "PHP")


@given(st.integers(min_value=0, max_value=10**15), st.sampled_from(sorted(CURRENCIES)))
def test_format_parse_round_trip(minor: int, currency: str) -> None:
    text = Money(minor, currency).decimal_text().replace(",", "")
    assert parse_minor(text, currency) == minor


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=1, max_value=9))
def test_any_nonzero_third_decimal_rejected(whole: int, digit: int) -> None:
    with pytest.raises(MoneyError):
        parse_minor(f"{whole}.00{digit}", "PHP")
