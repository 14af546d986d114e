"""Operators, number plans and the products on sale, loaded from config/catalog.toml.

Products are FIXED (a list of amounts the customer picks from, or one price) or RANGE
(min/max/step, the customer types an amount), as top-up aggregators expose them.

A product's texts are English; `names`, `descriptions` and `promos` give them per language
(`{ zh_CN = "...", fil = "..." }`), each language one with a catalog in config/locales/.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from typing import Any, Protocol

from .i18n import available_languages
from .money import Money


class ProductKind(str, Enum):
    AIRTIME = "airtime"      # load / credit, any amount
    DATA = "data"            # data pack
    BUNDLE = "bundle"        # monthly / quarterly all-in pack
    VALIDITY = "validity"    # keep my number active


@dataclass(frozen=True)
class Operator:
    id: str
    name: str
    prefixes: tuple[str, ...]      # national format, e.g. "0917"
    length: int                    # national number length, e.g. 11
    has_balance_inquiry: bool = False


@dataclass(frozen=True)
class Product:
    id: str
    operator: str
    kind: ProductKind
    name: str
    currency: str
    amounts: tuple[int, ...] = ()          # FIXED choices, minor units
    range_min: int | None = None           # RANGE, minor units
    range_max: int | None = None
    range_step: int = 1
    data_mb: int | None = None
    validity_days: int | None = None
    description: str = ""
    promo: str = ""                        # promotion text shown on the tile
    promo_until: date | None = None        # last day the promotion is sold
    names: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    descriptions: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    promos: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_range(self) -> bool:
        return self.range_min is not None

    def accepts(self, amount: int) -> bool:
        if self.is_range:
            assert self.range_min is not None and self.range_max is not None
            return (self.range_min <= amount <= self.range_max
                    and (amount - self.range_min) % self.range_step == 0)
        return amount in self.amounts

    def on_sale(self, today: date | None) -> bool:
        return self.promo_until is None or today is None or today <= self.promo_until

    def label(self, lang: str) -> str:
        return self.names.get(lang, self.name)

    def text(self, lang: str) -> str:
        return self.descriptions.get(lang, self.description)

    def promo_text(self, lang: str) -> str:
        """The promotion in `lang` ("" none): its translation, else the English `promo`."""
        return self.promos.get(lang, self.promo) if self.promo else ""

    def price(self, amount: int) -> Money:
        return Money(amount, self.currency)


class ConfigTable(Protocol):
    """What read_translations needs of a configuration table (config_values.Table)."""

    def get(self, name: str, kind: Any, default: Any = ...) -> Any: ...

    def error(self, name: str, reason: str) -> Exception: ...


def translations(value: object, languages: Collection[str]) -> dict[str, str]:
    """A product's per-language texts checked: a table of language -> text, every
    language one of `languages`. Raises ValueError saying what is wrong."""
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError('must be a table of strings: { zh_CN = "...", fil = "..." }')
    for lang in value:
        if lang not in languages:
            have = ", ".join(sorted(languages)) or "none"
            raise ValueError(f"unknown language {lang!r} (languages with a translation: "
                             f"{have}; English is the product's own text)")
    return dict(value)


def read_translations(t: ConfigTable, name: str) -> dict[str, str]:
    """`names`, `descriptions` or `promos` of a catalog product's table (none: {}); a
    defect is the table's error naming the key."""
    try:
        return translations(t.get(name, object, {}), set(available_languages()) - {"en"})
    except ValueError as exc:
        raise t.error(name, str(exc)) from None


class NumberError(str, Enum):
    EMPTY = "empty"
    NOT_DIGITS = "not_digits"
    UNKNOWN_PREFIX = "unknown_prefix"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"


@dataclass(frozen=True)
class NumberCheck:
    national: str                     # digits in national format ("09171234567")
    operator: str | None = None
    error: NumberError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Catalog:
    currency: str
    country_code: str                 # "63"
    trunk_prefix: str                 # "0"
    operators: tuple[Operator, ...]
    products: tuple[Product, ...]

    def operator(self, op_id: str) -> Operator:
        for op in self.operators:
            if op.id == op_id:
                return op
        raise KeyError(op_id)

    def product(self, product_id: str) -> Product:
        for p in self.products:
            if p.id == product_id:
                return p
        raise KeyError(product_id)

    def offers(self, op_id: str, today: date | None = None) -> list[Product]:
        return [p for p in self.products if p.operator == op_id and p.on_sale(today)]

    def national(self, raw: str) -> str:
        """Strip separators and turn +63 917... / 63917... into 0917..."""
        digits = re.sub(r"[\s\-().]", "", raw)
        if digits.startswith("+" + self.country_code):
            digits = self.trunk_prefix + digits[1 + len(self.country_code):]
        elif digits.startswith("00" + self.country_code):
            digits = self.trunk_prefix + digits[2 + len(self.country_code):]
        return digits

    def check_number(self, raw: str) -> NumberCheck:
        national = self.national(raw)
        if not national:
            return NumberCheck(national, error=NumberError.EMPTY)
        if not (national.isascii() and national.isdigit()):
            return NumberCheck(national, error=NumberError.NOT_DIGITS)
        if (national.startswith(self.country_code)
                and not national.startswith(self.trunk_prefix)):
            national = self.trunk_prefix + national[len(self.country_code):]
        matches = [op for op in self.operators
                   if any(national.startswith(p) or p.startswith(national) for p in op.prefixes)]
        full = [op for op in matches if any(national.startswith(p) for p in op.prefixes)]
        if not full:
            # Either still typing the prefix or a prefix no operator has.
            if matches and len(national) < max(len(p) for op in matches for p in op.prefixes):
                return NumberCheck(national, error=NumberError.TOO_SHORT)
            return NumberCheck(national, error=NumberError.UNKNOWN_PREFIX)
        op = full[0]
        if len(national) < op.length:
            return NumberCheck(national, op.id, NumberError.TOO_SHORT)
        if len(national) > op.length:
            return NumberCheck(national, op.id, NumberError.TOO_LONG)
        return NumberCheck(national, op.id)

    def international(self, national: str) -> str:
        return self.country_code + national[len(self.trunk_prefix):]


def group_number(national: str) -> str:
    """'09171234567' -> '0917 123 4567' for reading back to the customer."""
    if len(national) == 11:
        return f"{national[:4]} {national[4:7]} {national[7:]}"
    return " ".join(national[i:i + 4] for i in range(0, len(national), 4))


def mask_number(national: str, mask: str = "•") -> str:
    """'09171234567' -> '0917•••4567': enough for the owner to recognise, not to dial."""
    if len(national) <= 6:
        return mask * len(national)
    return national[:4] + mask * 3 + national[-4:]
