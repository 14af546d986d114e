"""Logging with personal data masked: phone numbers and ICCIDs never reach a log line whole."""

from __future__ import annotations

import logging
import re

# Runs of 10-22 digits (phone numbers with or without country code, ICCIDs, voucher codes),
# possibly written with a leading + or in groups separated by single spaces.
_DIGITS = re.compile(r"(?<![\w.-])\+?[0-9](?:[ ]?[0-9]){9,21}(?![\w.-])")
# Phone numbers as people write them: starting with + or 0 (or "(0"), groups separated by
# dashes, dots, spaces or parentheses: "0917-123-4567", "(0917) 123 4567", "+63 917.123.4567".
# Starting with + or 0 keeps dates and times ("2026-11-22 06:04") out.
_PHONE = re.compile(r"(?<![\w.-])(?:\+|\(?0)[0-9()\s.-]{8,20}[0-9](?![\w])")


def _masked(digits: str) -> str:
    return digits[:4] + "*" * (len(digits) - 8) + digits[-4:]


def mask(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        return _masked(re.sub(r"[^0-9]", "", m.group(0)))

    def repl_phone(m: re.Match[str]) -> str:
        digits = re.sub(r"[^0-9]", "", m.group(0))
        return _masked(digits) if 10 <= len(digits) <= 15 else m.group(0)
    return _PHONE.sub(repl_phone, _DIGITS.sub(repl, text))


class MaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        masked = mask(msg)
        if masked != msg:
            record.msg, record.args = masked, None
        return True


def setup(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
