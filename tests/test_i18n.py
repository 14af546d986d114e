"""Translations: every string on screen has a translation in every language, with the
same placeholders; Chinese is Chinese (brands and units aside) and marks its word
boundaries; every notice the engine can set has words for the customer; dates are
written as each language writes them; receipts print in the customer's language when the
printer can, and voucher SMS are whole in every language."""
# Full-width Chinese punctuation is what these tests are about.
# ruff: noqa: RUF001

from __future__ import annotations

import re
import string
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kiosk import i18n, receipts
from kiosk.catalog import NumberError
from kiosk.engine import Outcome, Txn
from kiosk.linebreak import MARK, strip_marks
from kiosk.messages import extract, missing
from kiosk.sms import SmsSettings
from kiosk.voucher_delivery import language as sms_language
from kiosk.voucher_delivery import voucher_text

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = [lang for lang in i18n.available_languages() if lang != "en"]
# Latin words a Chinese text may keep: brands, units, the names of standards.
ZH_LATIN_OK = {"SIM", "QR", "Ph", "GB", "MB", "PIN", "GCash", "Maya", "OK"}


def fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}


def translations(lang: str) -> dict[str, str]:
    catalog = i18n.load(lang)
    return {msgid: catalog.gettext(msgid) for msgid in extract()}


def test_the_kiosk_speaks_filipino_and_chinese() -> None:
    assert {"zh_CN", "fil"} <= set(LANGUAGES)
    assert i18n.language_name("fil") == "Filipino"
    assert i18n.load("fil").info()["Language"] == "fil"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_screen_string_is_translated(lang: str) -> None:
    found = extract()
    assert len(found) > 100            # the extractor sees the screens
    assert missing(lang, found) == []
    same = [m for m, t in translations(lang).items() if t == m and re.search(r"[a-z]{4}", m)]
    # Words that stay English in the language's everyday use are few.
    assert len(same) < 12, same


@pytest.mark.parametrize("lang", LANGUAGES)
def test_placeholders_survive_translation(lang: str) -> None:
    for msgid, text in translations(lang).items():
        assert fields(text) == fields(msgid), (lang, msgid)
        assert text.count("\n") == msgid.count("\n"), (lang, msgid)


def test_chinese_has_no_english_words_left() -> None:
    for msgid, text in translations("zh_CN").items():
        words = set(re.findall(r"[A-Za-z]{3,}", re.sub(r"\{[^}]*\}", "", text)))
        assert words <= ZH_LATIN_OK, (msgid, words - ZH_LATIN_OK)
        if not set(re.findall(r"[A-Za-z]+", msgid)) <= ZH_LATIN_OK:     # "QR Ph" stays
            assert re.search(r"[\u4e00-\u9fff]", text), msgid


def test_chinese_marks_where_its_lines_may_break() -> None:
    """Chinese has no spaces: a longer text marks its word boundaries with U+200B, and
    its words stay short (a mark between every word, none inside one)."""
    for msgid, text in translations("zh_CN").items():
        plain = strip_marks(text)
        if len(plain) > 6 and MARK not in text:
            assert re.search(r"[ ，。、：；！？…（]", plain), (msgid, plain)
        assert MARK * 2 not in text and not text.startswith(MARK), msgid
        assert not re.search(MARK + "[，。、：；！？）」』》]", text), msgid
        for word in re.split(f"[{MARK} ，。、：；！？…“”（）\\n]", text):
            assert len(re.findall(r"[\u4e00-\u9fff]", word)) <= 4, (msgid, word)


@pytest.mark.parametrize("word", ["SIM卡", "号码", "识币器", "套餐", "代金券"])
def test_chinese_words_that_wrapped_badly_are_single_words(word: str) -> None:
    """卡 of SIM卡, 码 of 号码, 币器 of 识币器, 餐 of 套餐 once started a line of their own."""
    texts = [t for t in translations("zh_CN").values() if word in strip_marks(t)]
    assert texts, word
    for t in texts:
        assert word in t, t                                 # never split by a mark
    assert not [t for t in translations("zh_CN").values() if "SIM 卡" in t]


def test_every_engine_notice_has_words() -> None:
    src = (ROOT / "kiosk" / "engine.py").read_text()
    literal = set(re.findall(r'notice="([a-z_]+\.[a-z_]+)"', src))
    keys = literal | {f"number.{e.value}" for e in NumberError} | {
        f"{m}.unavailable" for m in ("cash", "qr", "card")} | {
        "qr.declined", "qr.expired", "card.declined", "card.aborted"}
    assert literal, "the engine sets notices"
    assert sorted(k for k in keys if k not in i18n.NOTICES) == []


def test_translator_switches_and_falls_back_to_english() -> None:
    tr = i18n.Translator(("en", "zh_CN"), "en")
    assert tr("Finish") == "Finish"
    tr.set("zh_CN")
    assert tr("Finish") == "完成"
    assert tr("a string nobody translated") == "a string nobody translated"
    assert strip_marks(tr.notice("number.too_short")) == "号码位数太少，请检查。"
    with pytest.raises(KeyError):
        tr.set("fr")


def test_po_parser_handles_multiline_escapes_and_fuzzy() -> None:
    po = '''
msgid ""
msgstr "Language: xx\\n"

msgid "one"
msgstr "uno"

#, fuzzy
msgid "two"
msgstr "dos?"

msgid ""
"three "
"lines\\n"
msgstr "tres "
"lineas\\n"
'''
    assert i18n.parse_po(po) == {"": "Language: xx\n", "one": "uno",
                                 "three lines\n": "tres lineas\n"}


def test_languages_are_discovered_from_the_catalog_files(tmp_path) -> None:
    base = tmp_path / "tl" / "LC_MESSAGES"
    base.mkdir(parents=True)
    (base / "kiosk.po").write_text('msgid ""\nmsgstr "X-Language-Name: Tagalog\\n"\n\n'
                                   'msgid "Finish"\nmsgstr "Tapos"\n', encoding="utf-8")
    assert i18n.available_languages(tmp_path) == ("en", "tl")
    assert i18n.language_name("tl", tmp_path) == "Tagalog"
    assert i18n.load("tl", tmp_path).gettext("Finish") == "Tapos"
    assert i18n.language_name("zh_CN") == "中文"


def test_every_backend_failure_reason_has_words_for_the_customer() -> None:
    keys = set()
    for path in (ROOT / "kiosk" / "backend").glob("*.py"):
        keys |= set(re.findall(r'"(backend\.[a-z_]+)"', path.read_text()))
    assert "backend.recently_recharged" in keys
    assert sorted(k for k in keys if k not in i18n.NOTICES) == []


@pytest.mark.parametrize(("lang", "text"), [
    ("en", "5 Dec 2026"), ("zh_CN", "2026年12月5日"), ("fil", "Dis 5, 2026"),
    ("fr", "5 Dec 2026"),              # a language without its own format: English
])
def test_dates_are_written_as_each_language_writes_them(lang: str, text: str) -> None:
    assert i18n.format_date(date(2026, 12, 5), lang) == text


def test_filipino_month_names() -> None:
    months = [i18n.format_date(date(2026, m, 1), "fil").split()[0] for m in range(1, 13)]
    assert months == ["Ene", "Peb", "Mar", "Abr", "May", "Hun", "Hul", "Ago", "Set", "Okt",
                      "Nob", "Dis"]
    assert i18n.format_date(date(2027, 1, 31), "zh_CN") == "2027年1月31日"


# ---------------------------------------------------------------- receipts and SMS
def a_receipt(lang: str | None = None, **txn: Any) -> receipts.Receipt:
    from kiosk.config import DEFAULT_CONFIG, load_catalog
    catalog = load_catalog(DEFAULT_CONFIG.parent / "catalog.toml")
    t = Txn(**{"msisdn": "09171234567", "operator": "globe", "product_id": "globe-keep",
               "amount": 1500, "method": "cash", "ref": "K0001-000042", "paid": 2000,
               "credited": 1500, "operator_ref": "OP-778899", "outcome": Outcome.SUCCESS,
               "voucher": 500, "voucher_code": "1234567890123452", **txn})
    kw: dict[str, Any] = {} if lang is None else {"lang": lang}
    return receipts.build(t, catalog, kiosk_id="K0001", site="Cubao MRT station",
                          support="Call 8-700", tz="Asia/Manila", now=1_750_000_000,
                          voucher_expires="2026-12-31", **kw)


def test_a_filipino_customer_gets_a_filipino_receipt() -> None:
    en, fil = a_receipt(), a_receipt("fil")
    assert fil.facts == en.facts and fil.qr == en.qr      # the screen translates the facts
    assert fil.lines[0] == "PREPAID LOAD"
    for line in ("Numero: 0917***4567", "Produkto: Panatilihin ang numero",
                 "Paraan ng bayad: Cash", "Status: MATAGUMPAY", "Halaga ng voucher: PHP 5.00",
                 "Valid hanggang: 2026-12-31", "Tulong: Call 8-700",
                 "Ipambayad ang voucher sa alinman sa aming mga kiosk."):
        assert line in fil.lines, line
    assert len(fil.lines) == len(en.lines)
    assert all(line.encode("cp437") for line in fil.lines)   # the printer's own code page


def test_a_chinese_customer_gets_an_english_receipt_the_printer_can_print() -> None:
    assert a_receipt("zh_CN").lines == a_receipt("en").lines == a_receipt().lines
    assert a_receipt("xx").lines == a_receipt().lines         # no catalog: English
    assert a_receipt().lines[0] == "PREPAID TOP-UP"
    assert receipts.printed_language("zh_CN")("Status") == "Status"


@pytest.mark.parametrize("lang", ["en", "fil"])
def test_printed_receipts_keep_the_paper_width_rules(lang: str) -> None:
    from drivers.printer.escpos import layout
    r = a_receipt(lang, outcome=Outcome.FAILED_VOUCHER, credited=0, voucher=2000)
    assert len(r.lines[0]) <= 32 and "-" * 32 in r.lines
    printed = layout(r.lines, 32)
    assert max(len(line) for line in printed) <= 32
    assert " ".join(printed).split() == " ".join(r.lines).split()   # words never cut


def test_a_voucher_slip_is_reprinted_in_the_customers_language() -> None:
    v = {"code": "1234567890123452", "amount": 5000, "expires": "2026-01-31",
         "ref": "K0001-000042", "status": "redeemed"}
    kw: dict[str, Any] = {"currency": "PHP", "kiosk_id": "K0001", "site": "Cubao",
                          "support": "8-700", "tz": "Asia/Manila", "now": 1_750_000_000}
    fil = receipts.voucher_slip(v, today="2026-01-01", lang="fil", **kw)
    assert fil.lines[2] == "VOUCHER (KOPYA)" and "Status: NAGAMIT NA" in fil.lines
    en = receipts.voucher_slip({**v, "status": "active"}, today="2026-02-01", **kw)
    assert "Status: EXPIRED" in en.lines and en.lines[0] == "PREPAID TOP-UP"
    zh = receipts.voucher_slip({**v, "status": "active"}, today="2026-02-01", lang="zh_CN",
                               **kw)
    assert zh.lines == en.lines


@pytest.mark.parametrize("lang", LANGUAGES)
def test_voucher_sms_in_every_language_is_complete_and_plain(lang: str) -> None:
    v = {"code": "1234567890123452", "amount": 5000, "currency": "PHP",
         "expires": "2027-05-20", "ref": "K0001-7KQ2-000042"}
    for row in (v, {**v, "expires": ""}):
        text = voucher_text(row, currency="PHP", support="Hotline 8888-0000", lang=lang)
        assert MARK not in text and "{" not in text
        for part in ("1234 5678 9012 3452", "PHP 50.00", "K0001-7KQ2-000042", "8888-0000"):
            assert part in text, (lang, text)
        assert ("2027-05-20" in text) == bool(row["expires"])
        assert text != voucher_text(row, currency="PHP", support="Hotline 8888-0000")
    if lang == "fil":                      # GSM 7-bit: one SMS part holds 160 characters
        assert voucher_text(v, currency="PHP", support="", lang=lang).isascii()


def test_the_sms_goes_out_in_the_customers_language_when_the_journal_has_it() -> None:
    conf = SmsSettings()
    settings = SimpleNamespace(ui=SimpleNamespace(default_language="en"))
    assert sms_language(settings, conf) == "en"
    assert sms_language(settings, SmsSettings(language="zh_CN")) == "zh_CN"
    assert sms_language(settings, conf, {"lang": "fil"}) == "fil"
    assert sms_language(settings, conf, {"lang": None}) == "en"
