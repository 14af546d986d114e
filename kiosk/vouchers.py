"""Voucher codes: 16 digits, 15 of them from the OS's CSPRNG and a Luhn check digit, so a
mistyped code is caught before any look-up and codes cannot be guessed."""

from __future__ import annotations

import secrets

from . import luhn

LENGTH = 16


def new_code() -> str:
    body = "".join(secrets.choice("0123456789") for _ in range(LENGTH - 1))
    return body + luhn.check_digit(body)


def well_formed(code: str) -> bool:
    digits = code.replace(" ", "").replace("-", "")
    return len(digits) == LENGTH and luhn.valid(digits)


def pretty(code: str) -> str:
    return " ".join(code[i:i + 4] for i in range(0, len(code), 4))
