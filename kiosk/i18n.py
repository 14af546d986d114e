"""Translations through gettext catalogs: config/locales/<lang>/LC_MESSAGES/kiosk.po.

Source strings are English; a language is added by dropping in a .po file (a compiled
.mo beside it is used when present, otherwise the .po is read directly, so translators
need no build step). Engine notices are keys ("number.too_short") mapped to English
sentences in NOTICES, then translated like any other string.
"""

from __future__ import annotations

import ast
import datetime
import functools
import gettext
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent.parent / "config" / "locales"
DOMAIN = "kiosk"

# Dates as each language writes them on screen; a language not here writes English.
MONTHS = {
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "fil": ("Ene", "Peb", "Mar", "Abr", "May", "Hun", "Hul", "Ago", "Set", "Okt", "Nob", "Dis"),
}
DATE_FORMATS = {"en": "{day} {mon} {year}", "fil": "{mon} {day}, {year}",
                "zh_CN": "{year}年{month}月{day}日"}


def format_date(d: datetime.date, lang: str) -> str:
    """A day as the customer reads it: "5 Dec 2026", "2026年12月5日", "Dis 5, 2026"."""
    fmt = DATE_FORMATS.get(lang, DATE_FORMATS["en"])
    mon = MONTHS.get(lang, MONTHS["en"])[d.month - 1]
    return fmt.format(day=d.day, month=d.month, mon=mon, year=d.year)


def available_languages(locale_dir: Path = LOCALE_DIR) -> tuple[str, ...]:
    """English (the source language) and every language with a catalog in locale_dir."""
    found = {p.parent.parent.name for p in locale_dir.glob(f"*/LC_MESSAGES/{DOMAIN}.[pm]o")}
    return ("en", *sorted(found - {"en"}))


@functools.cache
def language_name(lang: str, locale_dir: Path = LOCALE_DIR) -> str:
    """The name on the language switch, from the catalog header `X-Language-Name`."""
    if lang == "en":
        return "English"
    header = load(lang, locale_dir).gettext("")
    for line in header.splitlines():
        if line.startswith("X-Language-Name:"):
            return line.split(":", 1)[1].strip()
    return lang


def N_(text: str) -> str:
    """Marks a string for extraction without translating it here."""
    return text


# What the customer reads for each notice the engine sets.
NOTICES: dict[str, str] = {
    "number.empty": N_("Please type your mobile number."),
    "number.not_digits": N_("Use the number keys only."),
    "number.too_short": N_("This number is too short. Please check it."),
    "number.too_long": N_("This number is too long. Please check it."),
    "number.unknown_prefix": N_("We do not sell top-ups for this number. "
                                "Please check the first digits."),
    "sim.unknown": N_("We could not find the number of this SIM card. Please type your number."),
    "sim.removed": N_("The SIM card was removed. Insert it again or type your number."),
    "sim.not_sim": N_("This is not a SIM card. Please take it back and insert your SIM card "
                      "in its card holder, or type your number."),
    "sim.mute": N_("We cannot read this card. Turn it over and insert it again, chip first."),
    "sim.bad_iccid": N_("This SIM card cannot be read. Please type your number."),
    "sim.unreadable": N_("The card could not be read. Insert it again, or type your number."),
    "product.unknown": N_("This product is no longer available."),
    "product.wrong_operator": N_("This product is for another network than your number."),
    "product.expired": N_("This promotion has ended."),
    "product.bad_amount": N_("Please choose an amount within the limits shown."),
    "product.checking": N_("One moment: checking what your number can get."),
    "product.unavailable": N_("This product cannot be bought for your number right now."),
    "backend.unavailable": N_("Top-up is temporarily unavailable. Nothing was charged. "
                              "Please try again later."),
    "note.too_large": N_("That note is more than you still need to pay. It was given back."),
    "note.rejected": N_("That note was not accepted. Please try another one."),
    "cash.unavailable": N_("Cash payment is not available right now. "
                           "Please choose another way to pay."),
    "cash.off": N_("Notes cannot be taken now. Your note was given back. "
                   "Please choose another way to pay."),
    "qr.unavailable": N_("QR payment is not available right now. "
                         "Please choose another way to pay."),
    "qr.declined": N_("The wallet payment was declined. Nothing was charged."),
    "qr.expired": N_("The QR code expired. Nothing was charged."),
    "card.unavailable": N_("Card payment is not available right now. "
                           "Please choose another way to pay."),
    "card.declined": N_("Your card was declined. Nothing was charged."),
    "card.aborted": N_("The card payment was cancelled. Nothing was charged."),
    "card.timeout": N_("The card terminal did not answer. Nothing was charged."),
    "card.offline": N_("The card terminal is not available. Please choose another way to pay."),
    "backend.rejected": N_("The network operator refused the top-up."),
    "backend.not_received": N_("The top-up did not reach the network operator."),
    # The kiosk's own float ran out: the customer is told the service is unavailable.
    "backend.insufficient_balance": N_("Top-ups are temporarily unavailable at this kiosk."),
    "backend.recently_recharged": N_("This number was topped up a moment ago. Please wait "
                                     "a few minutes before the next top-up."),
    "backend.invalid_amount": N_("The network operator does not accept this amount."),
    "backend.unknown_operator": N_("The network operator of this number is not available."),
    "voucher.wait": N_("One moment, please."),
    "voucher.checking": N_("Checking your voucher…"),
    "voucher.invalid": N_("This is not a valid voucher code. Please check the digits."),
    "voucher.unknown": N_("This voucher code is not known. Please check the digits."),
    "voucher.used": N_("This voucher has already been used."),
    "voucher.expired": N_("This voucher has expired."),
    "voucher.held": N_("This voucher is not valid yet: its top-up is still being processed."),
    "voucher.void": N_("This voucher is not valid: its top-up went through."),
    "voucher.slow_down": N_("Too many codes were not accepted. Please wait a moment, "
                       "then try again."),
    "cancelled": N_("You cancelled."),
    "cash_fault": N_("The note reader stopped working."),
    "change": N_("Change"),
    "reversal_failed": N_("The card payment could not be reversed."),
    "amount_mismatch": N_("The amount paid did not match."),
}


class PoTranslations(gettext.NullTranslations):
    """A gettext translation read straight from a .po file."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.catalog = parse_po(path.read_text(encoding="utf-8"))

    def gettext(self, message: str) -> str:
        return self.catalog.get(message) or message

    def info(self) -> dict[str, str]:
        return dict(line.split(": ", 1) for line in self.catalog.get("", "").splitlines()
                    if ": " in line)


def parse_po(text: str) -> dict[str, str]:
    """msgid/msgstr pairs of a .po file (multi-line strings joined; fuzzy entries skipped)."""
    out: dict[str, str] = {}
    msgid: list[str] | None = None
    msgstr: list[str] | None = None
    current: list[str] | None = None
    fuzzy = False

    def flush() -> None:
        if msgid is not None and msgstr is not None and not fuzzy:
            key, val = "".join(msgid), "".join(msgstr)
            if val:                      # the header is the translation of ""
                out[key] = val

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#,") and "fuzzy" in line:
            flush()
            msgid = msgstr = current = None
            fuzzy = True
        elif line.startswith("msgid "):
            if msgstr is not None:
                flush()
                fuzzy = False if msgid is not None else fuzzy
            msgid, msgstr = [ast.literal_eval(line[6:])], None
            current = msgid
        elif line.startswith("msgstr "):
            msgstr = [ast.literal_eval(line[7:])]
            current = msgstr
        elif line.startswith('"') and current is not None:
            current.append(ast.literal_eval(line))
        elif not line:
            flush()
            msgid = msgstr = current = None
            fuzzy = False
    flush()
    return out


def load(lang: str, locale_dir: Path = LOCALE_DIR) -> gettext.NullTranslations:
    if lang == "en":
        return gettext.NullTranslations()
    base = locale_dir / lang / "LC_MESSAGES"
    mo, po = base / f"{DOMAIN}.mo", base / f"{DOMAIN}.po"
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as fh:
            return gettext.GNUTranslations(fh)
    if po.exists():
        return PoTranslations(po)
    raise FileNotFoundError(f"no translation for {lang!r} in {base}")


class Translator:
    def __init__(self, languages: tuple[str, ...], default: str) -> None:
        self.default = default
        self.catalogs = {lang: load(lang) for lang in languages}
        self.lang = default

    def set(self, lang: str) -> None:
        if lang not in self.catalogs:
            raise KeyError(lang)
        self.lang = lang

    def __call__(self, text: str) -> str:
        return self.catalogs[self.lang].gettext(text)

    def notice(self, key: str) -> str:
        return self(NOTICES.get(key, key)) if key else ""
