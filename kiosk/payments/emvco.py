"""EMVCo merchant-presented QR payloads: TLV encode/decode and the CRC.

Each data object is a 2-digit id, a 2-digit length and the value. Ids 26-51 (merchant
account information) and 62 (additional data) are templates holding nested objects.
The payload ends with 63 04 + CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) computed over
everything before the CRC value, "6304" included, as 4 uppercase hex digits (drivers/crc.py,
where the kiosk's CRCs live).
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.crc import crc16_ccitt_false

TEMPLATES = set(range(26, 52)) | {62, 64}


class QrPayloadError(ValueError):
    pass


def _digits(s: str) -> bool:
    """ASCII digits only: str.isdigit() also takes "³" or "٣", which int() then refuses."""
    return s.isascii() and s.isdigit()


def tlv(tag: str | int, value: str) -> str:
    tag = f"{int(tag):02d}"
    if len(value) > 99:
        raise QrPayloadError(f"tag {tag}: value longer than 99 characters")
    return f"{tag}{len(value):02d}{value}"


@dataclass(frozen=True)
class Field:
    tag: str
    value: str
    children: tuple[Field, ...] = ()


def parse_tlv(text: str, where: str = "") -> list[Field]:
    out: list[Field] = []
    i = 0
    while i < len(text):
        if len(text) - i < 4:
            raise QrPayloadError(f"truncated data object at position {i}{where}")
        tag, length = text[i:i + 2], text[i + 2:i + 4]
        if not (_digits(tag) and _digits(length)):
            raise QrPayloadError(f"bad tag or length {text[i:i + 4]!r} at position {i}{where}")
        n = int(length)
        value = text[i + 4:i + 4 + n]
        if len(value) != n:
            raise QrPayloadError(f"tag {tag}: length {n} runs past the end{where}")
        children: tuple[Field, ...] = ()
        if int(tag) in TEMPLATES:
            children = tuple(parse_tlv(value, f" inside tag {tag}"))
        out.append(Field(tag, value, children))
        i += 4 + n
    return out


def with_crc(body: str) -> str:
    body += "6304"
    return body + f"{crc16_ccitt_false(body.encode('utf-8')):04X}"


def decode(payload: str) -> list[Field]:
    """Parse and verify a payload; raises QrPayloadError with a reason."""
    if len(payload) < 8 or payload[-8:-4] != "6304":
        raise QrPayloadError("the payload does not end with a CRC (tag 63, length 04)")
    want = payload[-4:].upper()
    got = f"{crc16_ccitt_false(payload[:-4].encode('utf-8')):04X}"
    if want != got:
        raise QrPayloadError(f"CRC mismatch: payload says {want}, computed {got}")
    fields = parse_tlv(payload)
    if not fields or fields[0].tag != "00":
        raise QrPayloadError("the payload must start with tag 00 (payload format indicator)")
    return fields


def merchant_payload(*, scheme_tag: int, scheme_id: str, merchant_id: str, mcc: str,
                     currency_numeric: int, amount_text: str | None, country: str,
                     name: str, city: str, reference: str | None = None,
                     terminal: str | None = None) -> str:
    """A dynamic (point-of-initiation 12) payload when an amount is given, static (11) if not."""
    account = tlv(0, scheme_id) + tlv(1, merchant_id)
    extra = ""
    if reference:
        extra += tlv(5, reference)
    if terminal:
        extra += tlv(7, terminal)
    body = (tlv(0, "01") + tlv(1, "12" if amount_text else "11") + tlv(scheme_tag, account)
            + tlv(52, mcc) + tlv(53, f"{currency_numeric:03d}")
            + (tlv(54, amount_text) if amount_text else "")
            + tlv(58, country) + tlv(59, name[:25]) + tlv(60, city[:15])
            + (tlv(62, extra) if extra else ""))
    return with_crc(body)


TAG_NAMES = {
    "00": "payload format indicator", "01": "point of initiation (11 static, 12 dynamic)",
    "52": "merchant category code", "53": "transaction currency (ISO 4217)",
    "54": "transaction amount", "55": "tip or convenience indicator", "58": "country code",
    "59": "merchant name", "60": "merchant city", "61": "postal code",
    "62": "additional data", "63": "CRC", "64": "merchant information (alternate language)",
}
ADDITIONAL_DATA_NAMES = {
    "01": "bill number", "02": "mobile number", "03": "store label", "04": "loyalty number",
    "05": "reference label", "06": "customer label", "07": "terminal label",
    "08": "purpose of transaction", "09": "additional consumer data request",
}


def tag_name(tag: str, parent: str | None = None) -> str:
    if parent == "62":
        return ADDITIONAL_DATA_NAMES.get(tag, "")
    if parent is not None and 26 <= int(parent) <= 51:
        return {"00": "globally unique identifier"}.get(tag, "")
    if 2 <= int(tag) <= 25:
        return "merchant account (card networks)"
    if 26 <= int(tag) <= 51:
        return "merchant account information"
    return TAG_NAMES.get(tag, "")


def describe(fields: list[Field], parent: str | None = None) -> list[dict[str, object]]:
    """Fields as plain data, nested templates expanded (for the CLI)."""
    out: list[dict[str, object]] = []
    for f in fields:
        item: dict[str, object] = {"tag": f.tag, "name": tag_name(f.tag, parent),
                                   "value": f.value}
        if f.children:
            item["fields"] = describe(list(f.children), f.tag)
        out.append(item)
    return out
