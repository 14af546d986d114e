"""The real config/catalog.toml: number plans, masking, products and promotions."""

from __future__ import annotations

from datetime import date

import pytest

from kiosk.catalog import Catalog, NumberError, group_number, mask_number
from kiosk.config import DEFAULT_CONFIG, load_catalog


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(DEFAULT_CONFIG.parent / "catalog.toml")


def test_catalog_basics(catalog: Catalog) -> None:
    assert catalog.currency == "PHP"
    assert catalog.country_code == "63"
    assert {op.id for op in catalog.operators} == {"luzon", "isla", "bayan"}
    assert all(p.currency == "PHP" for p in catalog.products)
    assert all(isinstance(a, int) for p in catalog.products for a in p.amounts)


@pytest.mark.parametrize(("raw", "operator"), [
    ("09171234567", "luzon"),
    ("09181234321", "isla"),
    ("09951112222", "luzon"),
    ("08951234567", "bayan"),
    ("09911234567", "bayan"),
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
    assert check.operator == "luzon"


@pytest.mark.parametrize(("raw", "error", "operator"), [
    ("0917123456", NumberError.TOO_SHORT, "luzon"),       # 10 digits
    ("091712345678", NumberError.TOO_LONG, "luzon"),      # 12 digits
    ("+63 917 123 45678", NumberError.TOO_LONG, "luzon"),
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
    p = catalog.product("luzon-load")
    assert not p.is_range
    assert p.amounts == (1000, 2000, 5000, 10000, 30000, 50000)
    for a in p.amounts:
        assert p.accepts(a)
    for a in (0, 999, 1001, 1500, 2500, 50001, 100000, -1000):
        assert not p.accepts(a)
    single = catalog.product("luzon-data-3d")
    assert single.amounts == (5000,)
    assert single.accepts(5000) and not single.accepts(5100)
    assert single.price(5000).minor == 5000 and single.price(5000).currency == "PHP"


def test_range_product_checks_bounds_and_step(catalog: Catalog) -> None:
    p = catalog.product("luzon-load-any")
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
    p = catalog.product("luzon-data-7d")
    assert p.promo_until == date(2026, 12, 31)
    assert p.on_sale(date(2026, 1, 1))
    assert p.on_sale(date(2026, 12, 31))      # the last day is still on sale
    assert not p.on_sale(date(2027, 1, 1))
    assert p.on_sale(None)
    always = catalog.product("luzon-load")
    assert always.promo_until is None and always.on_sale(date(2099, 1, 1))

    before = {x.id for x in catalog.offers("luzon", date(2026, 6, 1))}
    after = {x.id for x in catalog.offers("luzon", date(2027, 1, 1))}
    assert "luzon-data-7d" in before
    assert "luzon-data-7d" not in after
    assert before - after == {"luzon-data-7d"}
    assert all(x.operator == "luzon" for x in catalog.offers("luzon"))


def test_product_labels(catalog: Catalog) -> None:
    p = catalog.product("luzon-load")
    assert p.label("zh_CN") == "话费"
    assert p.label("en") == "Load"
    assert p.text("xx") == p.description


def test_unknown_ids_raise(catalog: Catalog) -> None:
    with pytest.raises(KeyError):
        catalog.product("nope")
    with pytest.raises(KeyError):
        catalog.operator("nope")
