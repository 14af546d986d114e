"""Logging with personal data masked: phone numbers and ICCIDs never reach a log line whole.

And one record is one line: values from outside (wallet references, gateway and provider
error texts, terminal display texts) reach messages through %s arguments, so control
characters in the final message (newlines, ANSI escapes, U+2028/2029, bidi overrides)
are written as visible escapes ("\\n", "\\x1b"): a value cannot forge a second log line
or repaint the terminal. A traceback (the formatter's business) stays multi-line.
"""

from __future__ import annotations

import logging
import re

# Runs of 10-22 digits (phone numbers with or without country code, ICCIDs, voucher codes),
# possibly written with a leading + or in groups separated by single spaces.
_DIGITS = re.compile(r"(?<![\w.-])\+?[0-9](?:[ ]?[0-9]){9,21}(?![\w.-])")
# Phone numbers as people write them: starting with + or 0 (or "(0"), groups separated by
# dashes, dots, spaces or parentheses: "0917-123-4567", "(0917) 123 4567", "+63 917.123.4567".
# Starting with + or 0 keeps dates and times ("2026-11-22 06:04") out.
# Control characters count as separators too: "0917\n1234567" is masked like "0917 1234567".
_PHONE = re.compile(r"(?<![\w.-])(?:\+|\(?0)[0-9()\s.\x00-\x1f\x7f-\x9f-]{8,20}[0-9](?![\w])")
# C0 and C1 controls, DEL, the Unicode line and paragraph separators and the bidi controls.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _masked(digits: str) -> str:
    return digits[:4] + "*" * (len(digits) - 8) + digits[-4:]


def mask(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        return _masked(re.sub(r"[^0-9]", "", m.group(0)))

    def repl_phone(m: re.Match[str]) -> str:
        digits = re.sub(r"[^0-9]", "", m.group(0))
        return _masked(digits) if 10 <= len(digits) <= 15 else m.group(0)
    return _PHONE.sub(repl_phone, _DIGITS.sub(repl, text))


def escape(text: str) -> str:
    """Control characters as visible escapes: newline "\\n", ESC "\\x1b", U+2028 "\\u2028"."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class MaskingFilter(logging.Filter):
    """Masks personal data, then escapes control characters, in the final message. Masking
    comes first, so a number split by an injected newline is still found and masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except (TypeError, ValueError):
            return True                 # bad %-arguments: the handler reports them
        clean = escape(mask(msg))
        if clean != msg:
            record.msg, record.args = clean, None
        return True


def setup(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The HTTP client logs every request at INFO: the backend's reachability check alone
    # made most of a day's log. Requests are logged with --debug only.
    logging.getLogger("httpx").setLevel(logging.DEBUG if level <= logging.DEBUG
                                        else logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
