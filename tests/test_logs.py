"""Phone numbers and ICCIDs never reach a log line whole."""

from __future__ import annotations

import io
import logging

import pytest

from kiosk.logs import MaskingFilter, escape, mask, setup

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


# ---------------------------------------------------------------- one record, one line
FORGED = "ABC\n2026-12-07 INFO kiosk: paid 1000"


def _capture(name: str) -> tuple[logging.Logger, io.StringIO, logging.Handler]:
    """A logger writing through the kiosk's own format and filter into a string."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger, stream, handler


def test_a_newline_in_a_wallet_reference_cannot_forge_a_second_line() -> None:
    logger, stream, handler = _capture("test.kiosk.forge")
    try:
        logger.info("wallet order %s closed", FORGED)
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert out.count("\n") == 1 and out.endswith("\n")
    assert len(out.splitlines()) == 1
    assert "wallet order ABC\\n2026-12-07 INFO kiosk: paid 1000 closed" in out


@pytest.mark.parametrize(("raw", "shown"), [
    ("\r", "\\r"), ("\t", "\\t"), ("\x1b[2J", "\\x1b[2J"), ("\x00", "\\x00"),
    ("\x7f", "\\x7f"), ("\x85", "\\x85"), ("\x0b", "\\x0b"), ("\x0c", "\\x0c"),
    ("\u2028", "\\u2028"), ("\u2029", "\\u2029"), ("\u202e", "\\u202e"),
])
def test_control_characters_become_visible_escapes(raw: str, shown: str) -> None:
    out = escape(f"display: {raw}text")
    assert out == f"display: {shown}text"
    assert out.isprintable()
    assert len(out.splitlines()) == 1


def test_an_ansi_escape_in_a_provider_message_is_shown_escaped() -> None:
    logger, stream, handler = _capture("test.kiosk.ansi")
    try:
        logger.warning("provider said: %s", "\x1b[31mOK\x1b[0m\rINFO all good")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "\x1b" not in out and "\r" not in out
    assert "provider said: \\x1b[31mOK\\x1b[0m\\rINFO all good" in out


def test_masking_still_applies_to_escaped_text() -> None:
    logger, stream, handler = _capture("test.kiosk.mask_escape")
    try:
        logger.info("gateway error %s for %s", "bad\nline", NUMBER)
        logger.info("iccid %s\t%s", ICCID20, "\x1b[0m")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert len(out.splitlines()) == 2
    assert "gateway error bad\\nline for 0917***4567" in out
    assert "8989" + "*" * 12 + "0117\\t\\x1b[0m" in out
    assert NUMBER not in out and ICCID20 not in out


@pytest.mark.parametrize("split", ["0917\n1234567", "0917123\r\n4567", "0917\u20281234567",
                                   "+63\n917\n123\n4567", "0917\x001234567"])
def test_a_number_split_by_injected_control_characters_is_still_masked(split: str) -> None:
    logger, stream, handler = _capture("test.kiosk.split")
    try:
        logger.info("customer typed %s", split)
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert len(out.splitlines()) == 1
    message = out.split("customer typed ", 1)[1]
    assert "1234567" not in "".join(ch for ch in message if ch.isdigit())
    assert message.startswith(("0917", "6391")) and "*" in message


def test_a_traceback_stays_multi_line_while_the_message_is_escaped() -> None:
    logger, stream, handler = _capture("test.kiosk.traceback")
    try:
        try:
            raise RuntimeError("terminal said no")
        except RuntimeError:
            logger.exception("payment %s failed", "K1\nforged")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("payment K1\\nforged failed")
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "RuntimeError: terminal said no"


def test_setup_escapes_and_masks(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        setup(logging.INFO)
        logging.getLogger("test.kiosk.setup").info("ref %s for %s", FORGED, NUMBER)
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert "ref ABC\\n2026-12-07 INFO kiosk: paid 1000 for 0917***4567" in err


def test_http_requests_are_not_logged_by_default() -> None:
    import logging

    from kiosk import logs
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.setup()
        assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
        assert logging.getLogger("kiosk.runtime").isEnabledFor(logging.INFO)
        logs.setup(logging.DEBUG)
        assert logging.getLogger("httpx").isEnabledFor(logging.DEBUG)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.NOTSET)
