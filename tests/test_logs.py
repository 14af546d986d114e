"""Phone numbers and ICCIDs never reach a log line whole."""

from __future__ import annotations

import io
import logging

import pytest

from kiosk.logs import MaskingFilter, mask

NUMBER = "09171234567"
INTL = "+63 917 123 4567"
ICCID19 = "8989630100000000011"
ICCID20 = "89896301000000000117"


@pytest.mark.parametrize(("text", "secret"), [
    (f"topping up {NUMBER} now", NUMBER),
    (f"msisdn={NUMBER}", NUMBER),
    ("number 639171234567 sent", "639171234567"),
    ("number +639171234567 sent", "639171234567"),
    (f"number {INTL} sent", "9171234567"),
    (f"iccid {ICCID19}", ICCID19),
    (f"iccid {ICCID20} read", ICCID20),
    (f"({NUMBER})", NUMBER),
])
def test_mask_hides_numbers(text: str, secret: str) -> None:
    out = mask(text)
    assert out != text
    digits_only = "".join(ch for ch in out if ch.isdigit())
    assert secret.replace(" ", "").lstrip("+") not in digits_only
    assert "****" in out or "***" in out


def test_mask_keeps_head_and_tail() -> None:
    assert mask(NUMBER) == "0917***4567"
    assert mask(ICCID19) == "8989" + "*" * 11 + "0011"
    assert mask(ICCID20) == "8989" + "*" * 12 + "0117"
    assert mask(INTL) == "6391****4567"


@pytest.mark.parametrize("text", [
    "reference K0001-000042 closed",
    "paid 2000 credited 2000",
    "amount PHP 1,234.56",
    "trace 000123 auth A000123",
])
def test_mask_leaves_other_text_alone(text: str) -> None:
    assert mask(text) == text


def test_masking_filter_on_a_real_logger() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger("test.kiosk.masking")
    child = logging.getLogger("test.kiosk.masking.child")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        logger.info("SIM identified as %s", NUMBER)
        logger.warning("lookup of iccid %s for %s", ICCID20, INTL)
        child.error("top-up for %s failed", "639171234567")
        logger.info(f"preformatted {NUMBER}")
        logger.info("no personal data, %d notes", 3)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    out = stream.getvalue()
    lines = out.strip().splitlines()
    assert len(lines) == 5
    digits = [ln.replace(" ", "") for ln in lines]
    for secret in (NUMBER, ICCID20, "639171234567", "9171234567"):
        assert all(secret not in d for d in digits), out
    assert "0917***4567" in out
    assert "no personal data, 3 notes" in out


def test_masking_filter_with_caplog(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.kiosk.caplog")
    logger.addFilter(MaskingFilter())
    try:
        with caplog.at_level(logging.INFO, logger="test.kiosk.caplog"):
            logger.info("number %s, iccid %s", NUMBER, ICCID19)
    finally:
        logger.filters.clear()
    assert len(caplog.records) == 1
    assert NUMBER not in caplog.text and ICCID19 not in caplog.text
    assert NUMBER not in caplog.records[0].getMessage()
    assert "0917***4567" in caplog.text


@pytest.mark.parametrize("written", ["0917-123-4567", "(0917) 123 4567", "+63 917.123.4567",
                                     "0917 123 4567"])
def test_numbers_written_with_separators_are_masked(written: str) -> None:
    out = mask(f"customer typed {written} at 2026-11-22 06:04:58")
    digits = "".join(ch for ch in out if ch.isdigit())
    assert "1234567" not in digits.replace("20261122060458", "")
    assert "2026-11-22 06:04:58" in out                  # times are left alone
