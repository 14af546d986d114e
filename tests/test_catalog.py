"""The real config/catalog.toml: number plans, masking, products and promotions, and the
products' texts per language."""
# Full-width Chinese punctuation is what these tests are about.
# ruff: noqa: RUF001

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from kiosk.catalog import (
    Catalog,
    NumberError,
    Product,
    ProductKind,
    group_number,
    mask_number,
    read_translations,
    translations,
)
from kiosk.config import DEFAULT_CONFIG, load_catalog
from kiosk.config_values import ConfigError, Table
from kiosk.linebreak import MARK, strip_marks


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(DEFAULT_CONFIG.parent / "catalog.toml")


def test_catalog_basics(catalog: Catalog) -> None:
    assert catalog.currency == "PHP"
    assert catalog.country_code == "63"
    assert {op.id for op in catalog.operators} == {"globe", "tm", "smart", "tnt", "dito"}
    assert all(p.currency == "PHP" for p in catalog.products)
    assert all(isinstance(a, int) for p in catalog.products for a in p.amounts)


@pytest.mark.parametrize(("raw", "operator"), [
    ("09171234567", "globe"),
    ("09181234321", "smart"),
    ("09951112222", "globe"),
    ("08951234567", "dito"),
    ("09911234567", "dito"),
])
def test_valid_numbers(catalog: Catalog, raw: str, operator: str) -> None:
    check = catalog.check_number(raw)
    assert check.ok
    assert check.error is None
    assert check.operator == operator
    assert check.national == raw


@pytest.mark.parametrize("raw", [
    "+63 917 123 4567", "639171234567", "+639171234567", "0063 917 123 4567",
    "0917-123-4567", "(0917) 123 4567", " 0917 123 4567 ",
])
def test_international_and_grouped_forms_normalise(catalog: Catalog, raw: str) -> None:
    check = catalog.check_number(raw)
    assert check.ok, check
    assert check.national == "09171234567"
    assert check.operator == "globe"


@pytest.mark.parametrize(("raw", "error", "operator"), [
    ("0917123456", NumberError.TOO_SHORT, "globe"),       # 10 digits
    ("091712345678", NumberError.TOO_LONG, "globe"),      # 12 digits
    ("+63 917 123 45678", NumberError.TOO_LONG, "globe"),
    ("09", NumberError.TOO_SHORT, None),                  # still typing the prefix
    ("01112345678", NumberError.UNKNOWN_PREFIX, None),
    ("0111", NumberError.UNKNOWN_PREFIX, None),
    ("09001234567", NumberError.UNKNOWN_PREFIX, None),
    ("12345678901", NumberError.UNKNOWN_PREFIX, None),
    ("0917abc4567", NumberError.NOT_DIGITS, None),
    ("O9171234567", NumberError.NOT_DIGITS, None),        # letter O, not zero
    ("", NumberError.EMPTY, None),
    ("  ", NumberError.EMPTY, None),
])
def test_invalid_numbers(catalog: Catalog, raw: str, error: NumberError,
                         operator: str | None) -> None:
    check = catalog.check_number(raw)
    assert not check.ok
    assert check.error is error
    assert check.operator == operator


def test_international(catalog: Catalog) -> None:
    assert catalog.international("09171234567") == "639171234567"


def test_mask_number() -> None:
    assert mask_number("09171234567") == "0917•••4567"
    assert mask_number("09171234567", "*") == "0917***4567"
    masked = mask_number("09181234321", "*")
    assert "1234321" not in masked and masked.startswith("0918") and masked.endswith("4321")
    assert mask_number("12345") == "•••••"
    assert mask_number("123456", "*") == "******"


def test_group_number() -> None:
    assert group_number("09171234567") == "0917 123 4567"
    assert group_number("091712345678") == "0917 1234 5678"
    assert group_number("12345") == "1234 5"


def test_fixed_product_accepts_only_listed_amounts(catalog: Catalog) -> None:
    p = catalog.product("globe-load")
    assert not p.is_range
    assert p.amounts == (1000, 2000, 5000, 10000, 30000, 50000)
    for a in p.amounts:
        assert p.accepts(a)
    for a in (0, 999, 1001, 1500, 2500, 50001, 100000, -1000):
        assert not p.accepts(a)
    single = catalog.product("globe-data-3d")
    assert single.amounts == (5000,)
    assert single.accepts(5000) and not single.accepts(5100)
    assert single.price(5000).minor == 5000 and single.price(5000).currency == "PHP"


def test_range_product_checks_bounds_and_step(catalog: Catalog) -> None:
    p = catalog.product("globe-load-any")
    assert p.is_range
    assert (p.range_min, p.range_max, p.range_step) == (1000, 100000, 100)
    assert p.accepts(1000)          # min
    assert p.accepts(100000)        # max
    assert p.accepts(1100)
    assert p.accepts(55500)
    assert not p.accepts(999)       # below min
    assert not p.accepts(900)
    assert not p.accepts(100100)    # above max
    assert not p.accepts(1050)      # not on the 1.00 step
    assert not p.accepts(1001)


def test_promo_on_sale_by_date(catalog: Catalog) -> None:
    p = catalog.product("globe-data-7d")
    assert p.promo_until == date(2026, 12, 31)
    assert p.on_sale(date(2026, 1, 1))
    assert p.on_sale(date(2026, 12, 31))      # the last day is still on sale
    assert not p.on_sale(date(2027, 1, 1))
    assert p.on_sale(None)
    always = catalog.product("globe-load")
    assert always.promo_until is None and always.on_sale(date(2099, 1, 1))

    before = {x.id for x in catalog.offers("globe", date(2026, 6, 1))}
    after = {x.id for x in catalog.offers("globe", date(2027, 1, 1))}
    assert "globe-data-7d" in before
    assert "globe-data-7d" not in after
    assert before - after == {"globe-data-7d"}
    assert all(x.operator == "globe" for x in catalog.offers("globe"))


def test_product_labels(catalog: Catalog) -> None:
    p = catalog.product("globe-load")
    assert p.label("zh_CN") == "话费"
    assert p.label("en") == "Load"
    assert p.text("xx") == p.description


def test_unknown_ids_raise(catalog: Catalog) -> None:
    with pytest.raises(KeyError):
        catalog.product("nope")
    with pytest.raises(KeyError):
        catalog.operator("nope")


def test_products_speak_filipino_and_chinese(catalog: Catalog) -> None:
    keep = catalog.product("globe-keep")
    assert keep.label("fil") == "Panatilihin ang numero"
    assert keep.text("fil") == "Aktibo ang numero mo nang 30 araw"
    assert catalog.product("globe-load").label("fil") == "Load"     # "Load" stays "Load"
    for p in catalog.products:
        assert p.label("zh_CN") != p.name, p.id
        if p.description:
            assert {"zh_CN", "fil"} <= set(p.descriptions), p.id


def test_chinese_product_texts_mark_their_word_boundaries(catalog: Catalog) -> None:
    for p in catalog.products:
        for text in (p.label("zh_CN"), p.text("zh_CN"), p.promo_text("zh_CN")):
            if len(strip_marks(text)) > 6 and MARK not in text:
                assert re.search(r"[ ，。、：；！？]", text), (p.id, text)


def test_promo_text_per_language_falls_back_to_english() -> None:
    p = Product(id="x", operator="globe", kind=ProductKind.DATA, name="Data 6 GB",
                currency="PHP", amounts=(9900,), promo="Double data",
                promos={"zh_CN": "流量\u200b翻倍", "fil": "Doble ang data"})
    assert p.promo_text("fil") == "Doble ang data"
    assert p.promo_text("zh_CN") == "流量\u200b翻倍"
    assert p.promo_text("en") == p.promo_text("xx") == "Double data"
    plain = Product(id="y", operator="globe", kind=ProductKind.DATA, name="Data",
                    currency="PHP", amounts=(100,))
    assert plain.promo_text("fil") == plain.promo_text("en") == ""


def test_translations_are_checked_language_by_language() -> None:
    assert translations({"zh_CN": "话费", "fil": "Load"}, {"zh_CN", "fil"}) == {
        "zh_CN": "话费", "fil": "Load"}
    assert translations({}, {"zh_CN"}) == {}
    with pytest.raises(ValueError, match=r"unknown language 'zh_cn'.*fil, zh_CN"):
        translations({"zh_cn": "话费"}, {"zh_CN", "fil"})
    with pytest.raises(ValueError, match="table of strings"):
        translations({"fil": 5}, {"fil"})
    with pytest.raises(ValueError, match="table of strings"):
        translations("Doble ang data", {"fil"})


@pytest.mark.parametrize(("value", "reason"), [
    ({"tl": "Doble ang data"}, r"products\[3\]\.promos: unknown language 'tl'"),
    ({"en": "Double data"}, r"unknown language 'en'.*English is the product's own text"),
    ({"fil": ["Doble"]}, r"products\[3\]\.promos: must be a table of strings"),
    ("Doble ang data", r"must be a table of strings"),
])
def test_a_bad_translation_table_names_file_key_and_reason(value: object, reason: str) -> None:
    t = Table(Path("catalog.toml"), "products[3]", {"promos": value})
    with pytest.raises(ConfigError, match=reason):
        read_translations(t, "promos")


def test_translation_tables_read_from_a_product(tmp_path: Path) -> None:
    t = Table(tmp_path / "catalog.toml", "products[0]",
              {"promos": {"zh_CN": "赠送 5 GB", "fil": "Dagdag na 5 GB"}})
    assert read_translations(t, "promos") == {"zh_CN": "赠送 5 GB", "fil": "Dagdag na 5 GB"}
    assert read_translations(t, "names") == {}
    t.done()                                   # both keys were read
