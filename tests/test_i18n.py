"""Translations: every string on screen has a Chinese translation with the same
placeholders, and every notice the engine can set has words for the customer."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from kiosk import i18n
from kiosk.catalog import NumberError
from kiosk.messages import extract, missing

ROOT = Path(__file__).resolve().parent.parent


def fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}


def test_every_screen_string_is_translated_to_chinese() -> None:
    found = extract()
    assert len(found) > 100            # the extractor sees the screens
    assert missing("zh_CN", found) == []


def test_placeholders_survive_translation() -> None:
    zh = i18n.load("zh_CN")
    for msgid in extract():
        assert fields(zh.gettext(msgid)) == fields(msgid), msgid


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
    assert tr.notice("number.too_short") == "号码位数太少，请检查。"
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
