"""Logging with personal data masked: phone numbers and ICCIDs never reach a log line whole."""

from __future__ import annotations

import logging
import re

# Runs of 10-22 digits (phone numbers with or without country code, ICCIDs, voucher codes),
# possibly written with a leading + or in groups separated by single spaces.
_DIGITS = re.compile(r"(?<![\w.-])\+?\d(?:[ ]?\d){9,21}(?![\w.-])")


def mask(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group(0))
        return digits[:4] + "*" * (len(digits) - 8) + digits[-4:]
    return _DIGITS.sub(repl, text)


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
