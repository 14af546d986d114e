"""ZVT, the ECR <-> payment-terminal protocol (serial variant), as a pure module: no I/O, no clock.

Line: 9600 baud, 8 data bits, no parity, 2 stop bits. One frame format both ways::

    10 02 | APDU, every 10 sent twice | 10 03 | CRC-L CRC-H
    CRC = CRC-16/KERMIT (poly 0x1021 reflected = 0x8408, init 0, no final xor) over the
          APDU as it was before doubling, plus the ETX byte 03; low byte first, and the two
          CRC bytes themselves are not doubled.   Check value: b"123456789" -> 0x2189

The receiver answers every frame at once with one byte: ACK 06, or NAK 15 for a bad frame
(the sender repeats it). Above that, every APDU is answered with an APDU: commands with
"80 00 00" (positive) or "84 xx 00" (negative, xx = error code), and so is every message the
terminal sends while it has "master rights" (04 FF, 06 D1, 04 0F, 06 0F, 06 1E)::

    APDU = CLASS INSTR LEN DATA    LEN = 1 byte 00..FE, or FF + 2 bytes little-endian

Layers here: `crc16`, `frame`, `Decoder` (a byte stream -> frames / ACK / NAK / bad frames),
`Channel` (the link layer as a sans-I/O state machine: ACK, NAK, repeats), `Apdu`
(CLASS INSTR LEN DATA), the bitmaps ("BMP": a 1-byte tag, then a fixed, LLVAR, LLLVAR or TLV
value), and the messages the kiosk uses, both ways (the simulator speaks the terminal's side
with the same functions).

A card number never leaves this module: of BMP 22 (PAN) only the last four digits are read
(`pan.last4`); 23/24/2D (tracks), 2E (chip data), 0E (expiry), 17 (card sequence number) and
3A (CVV) are stepped over without being decoded. Terminal texts go through `pan.redact`.

Sources (public code; no ZVT specification document was available, only its table of contents
and fragments): wirelane/ecrterm (`crc.py`, `transport_serial.py`, `packets/apdu.py`,
`bitmaps.py`, `fields.py`, `tlv.py`, `types.py`, `base_packets.py`), Portalum/Portalum.Zvt
(`ChecksumHelper.cs`, `ApduHelper.cs`, `BmpParser.cs`, `PrintLineParser.cs`,
`RegistrationConfig.cs`, `ZvtClient.cs`, the English status and error repositories) and
kaplanerkan/kotlin-zvt-library (`ZvtConstants.kt`). See docs/protocols/zvt.md.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum

from ..crc import crc16_kermit as crc16  # the frame CRC, CRC-16/KERMIT
from .pan import BMP_PAN, last4, redact

DLE, STX, ETX, ACK, NAK = 0x10, 0x02, 0x03, 0x06, 0x15
MAX_APDU = 3 + 2 + 0xFFFF               # CLASS INSTR FF LL LH + data


class ZvtError(ValueError):
    """Bytes or values that are not valid ZVT (the terminal misbehaved, or we misused it)."""


# ---------------------------------------------------------------------------- BCD
def bcd(value: int | str, nbytes: int) -> bytes:
    """123, 2 -> 01 23. Digits only; too many digits for `nbytes` is an error."""
    digits = str(value)
    if not digits.isascii() or not digits.isdigit() or len(digits) > 2 * nbytes:
        raise ZvtError(f"{value!r} does not fit {nbytes} BCD bytes")
    return bytes.fromhex(digits.rjust(2 * nbytes, "0"))


def bcd_digits(data: bytes) -> str:
    """01 23 -> '0123'. A nibble above 9 is an error."""
    text = data.hex()
    if not text.isdigit() and text:
        raise ZvtError(f"{text} is not BCD")
    return text


def bcd_int(data: bytes) -> int:
    return int(bcd_digits(data) or "0")


def password_bytes(password: str) -> bytes:
    """The terminal's 6-digit password ('000000') as 3 BCD bytes."""
    if len(password) != 6 or not password.isascii() or not password.isdigit():
        raise ZvtError("the ZVT password has exactly 6 digits")
    return bytes.fromhex(password)


# ---------------------------------------------------------------------------- framing
def frame(apdu: bytes) -> bytes:
    """10 02 + APDU with each 10 doubled + 10 03 + CRC over APDU + 03, low byte first."""
    crc = crc16(bytes(apdu) + bytes((ETX,)))
    return (bytes((DLE, STX)) + bytes(apdu).replace(b"\x10", b"\x10\x10")
            + bytes((DLE, ETX)) + crc.to_bytes(2, "little"))


@dataclass(frozen=True)
class Control:
    """A lone ACK (06) or NAK (15) between frames."""
    byte: int


@dataclass(frozen=True)
class Frame:
    """A frame with a good CRC; `apdu` is unstuffed (not yet checked as an APDU)."""
    apdu: bytes


@dataclass(frozen=True)
class BadFrame:
    """A frame that ended but cannot be trusted: the receiver answers NAK."""
    reason: str


class Decoder:
    """Cuts a byte stream into frames, ACK/NAK bytes and bad frames; never raises.

    Outside a frame, 06 and 15 are ACK and NAK, `10 02` starts a frame and anything else is
    garbage (counted). Inside, `10 10` is one 10, `10 03` ends the data (two CRC bytes
    follow) and `10 02` means the frame was cut off and a new one starts (no NAK: the
    sender of the cut frame times out and repeats it). `10` + anything else, or more than
    `max_apdu` bytes, is a bad frame; so is a CRC mismatch. Feed it any chunks: whole
    frames, halves, single bytes.
    """

    def __init__(self, max_apdu: int = MAX_APDU) -> None:
        self.max_apdu = max_apdu
        self._state = "idle"        # idle | dle | data | data_dle | crc
        self._apdu = bytearray()
        self._crc = bytearray()
        self.garbage_bytes = 0
        self.bad_frames = 0

    @property
    def in_frame(self) -> bool:
        """Part of a frame has arrived (a receiver times a silent half frame out)."""
        return self._state not in ("idle", "dle")

    def reset(self) -> None:
        self._state = "idle"
        self._apdu.clear()
        self._crc.clear()

    def feed(self, data: bytes) -> list[Control | Frame | BadFrame]:
        out: list[Control | Frame | BadFrame] = []
        for byte in data:
            state = self._state
            if state == "idle":
                if byte in (ACK, NAK):
                    out.append(Control(byte))
                elif byte == DLE:
                    self._state = "dle"
                else:
                    self.garbage_bytes += 1
            elif state == "dle":
                if byte == STX:
                    self._start()
                    continue
                self.garbage_bytes += 1              # the 10 was noise; look at this byte again
                self._state = "idle"
                if byte in (ACK, NAK):
                    out.append(Control(byte))
                elif byte == DLE:
                    self._state = "dle"
                else:
                    self.garbage_bytes += 1
            elif state == "data":
                if byte == DLE:
                    self._state = "data_dle"
                elif len(self._apdu) >= self.max_apdu:
                    out.append(self._bad("longer than the largest APDU"))
                else:
                    self._apdu.append(byte)
            elif state == "data_dle":
                if byte == DLE:
                    self._apdu.append(DLE)
                    self._state = "data"
                elif byte == ETX:
                    self._state = "crc"
                elif byte == STX:
                    self.garbage_bytes += len(self._apdu) + 2
                    self._start()
                else:
                    out.append(self._bad(f"10 {byte:02X} inside a frame"))
            else:   # crc
                self._crc.append(byte)
                if len(self._crc) == 2:
                    apdu = bytes(self._apdu)
                    got = int.from_bytes(self._crc, "little")
                    self.reset()
                    if got == crc16(apdu + bytes((ETX,))):
                        out.append(Frame(apdu))
                    else:
                        self.bad_frames += 1
                        out.append(BadFrame("bad CRC"))
        return out

    def _start(self) -> None:
        self._state = "data"
        self._apdu.clear()
        self._crc.clear()

    def _bad(self, reason: str) -> BadFrame:
        self.bad_frames += 1
        self.reset()
        return BadFrame(reason)


# ---------------------------------------------------------------------------- link layer
@dataclass(frozen=True)
class Received:
    """A frame with a good CRC holding a well-formed APDU (already ACKed)."""
    apdu: Apdu


@dataclass(frozen=True)
class Malformed:
    """A frame with a good CRC whose content is not an APDU (ACKed: the line is fine)."""
    raw: bytes
    error: str


@dataclass(frozen=True)
class Delivered:
    """The frame we sent was ACKed."""


@dataclass(frozen=True)
class SendFailed:
    """The frame we sent was NAKed or not ACKed, every time."""
    reason: str


LinkEvent = Received | Malformed | Delivered | SendFailed


class Channel:
    """The ZVT link layer of one side, sans-I/O (h11 style): the caller writes
    `data_to_send()`, feeds what it reads to `receive_data`, and calls `ack_timeout()`
    when no ACK came within its T1. One frame at a time may wait for its ACK; frames that
    arrive meanwhile are ACKed (or NAKed) and reported as usual, so two frames crossing on
    the line (the ECR's abort and the terminal's status) both get through. A NAK or a
    missing ACK makes the frame go again, `repeats` times, then SendFailed."""

    def __init__(self, repeats: int = 3) -> None:
        self.repeats = repeats
        self.decoder = Decoder()
        self._out = bytearray()
        self._pending: bytes | None = None
        self._tries = 0
        self.stray_controls = 0          # ACK/NAK bytes with nothing waiting for one
        self.retransmissions = 0

    @property
    def awaiting_ack(self) -> bool:
        return self._pending is not None

    def send(self, apdu: bytes) -> None:
        if self._pending is not None:
            raise ZvtError("a frame is still waiting for its ACK")
        self._pending = frame(apdu)
        self._tries = 1
        self._out += self._pending

    def data_to_send(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out

    def receive_data(self, data: bytes) -> list[LinkEvent]:
        events: list[LinkEvent] = []
        for item in self.decoder.feed(data):
            match item:
                case Control(byte=b) if self._pending is None:
                    self.stray_controls += 1
                case Control(byte=b) if b == ACK:
                    self._pending = None
                    events.append(Delivered())
                case Control():
                    events += self._repeat("NAK")
                case Frame(apdu=raw):
                    self._out.append(ACK)
                    try:
                        events.append(Received(decode_apdu(raw)))
                    except ZvtError as exc:
                        events.append(Malformed(raw, str(exc)))
                case BadFrame():
                    self._out.append(NAK)
        return events

    def ack_timeout(self) -> list[LinkEvent]:
        return self._repeat("no ACK") if self._pending is not None else []

    def abandon(self) -> None:
        """Forget the frame waiting for its ACK and any half frame (the port was reopened)."""
        self._pending = None
        self.decoder.reset()
        self._out.clear()

    def _repeat(self, why: str) -> list[LinkEvent]:
        assert self._pending is not None
        if self._tries > self.repeats:
            self._pending = None
            return [SendFailed(f"{why} after {self._tries} tries")]
        self._tries += 1
        self.retransmissions += 1
        self._out += self._pending
        return []


# ---------------------------------------------------------------------------- APDUs
class Code(IntEnum):
    """CLASS << 8 | INSTR of the APDUs used here."""
    REGISTRATION = 0x0600
    AUTHORISATION = 0x0601
    COMPLETION = 0x060F
    ABORT = 0x061E                       # terminal -> ECR: the command failed, + result code
    REPEAT_RECEIPT = 0x0620
    REVERSAL = 0x0630
    ECR_ABORT = 0x06B0                   # ECR -> terminal: stop the running command
    PRINT_LINE = 0x06D1
    STATUS_INFORMATION = 0x040F
    INTERMEDIATE_STATUS = 0x04FF
    STATUS_ENQUIRY = 0x0501
    POSITIVE = 0x8000                    # "80 00 00"


NEGATIVE_CLASS = 0x84                    # "84 xx 00": xx = error code (the result codes)


@dataclass(frozen=True)
class Apdu:
    cls: int
    ins: int
    data: bytes = b""

    @property
    def code(self) -> int:
        return self.cls << 8 | self.ins

    @property
    def positive(self) -> bool:
        return self.code == Code.POSITIVE

    @property
    def negative(self) -> bool:
        return self.cls == NEGATIVE_CLASS

    def to_bytes(self) -> bytes:
        return encode_apdu(self.cls, self.ins, self.data)

    @property
    def name(self) -> str:
        """REGISTRATION, STATUS_INFORMATION, ... or the two bytes in hex."""
        try:
            return Code(self.code).name
        except ValueError:
            return f"{self.cls:02X} {self.ins:02X}"

    def __str__(self) -> str:
        return f"{self.cls:02X} {self.ins:02X} ({self.name}, {len(self.data)} bytes)"


def encode_apdu(cls: int, ins: int, data: bytes = b"") -> bytes:
    if not (0 <= cls <= 0xFF and 0 <= ins <= 0xFF):
        raise ZvtError(f"control field {cls!r} {ins!r} is not two bytes")
    n = len(data)
    if n < 0xFF:
        length = bytes((n,))
    elif n <= 0xFFFF:
        length = b"\xff" + n.to_bytes(2, "little")
    else:
        raise ZvtError(f"{n} data bytes do not fit an APDU")
    return bytes((cls, ins)) + length + bytes(data)


def decode_apdu(raw: bytes) -> Apdu:
    """The exact inverse of encode_apdu: the length must match the data that follows."""
    if len(raw) < 3:
        raise ZvtError(f"an APDU has at least 3 bytes, got {bytes(raw).hex(' ')}")
    n, start = raw[2], 3
    if n == 0xFF:
        if len(raw) < 5:
            raise ZvtError("extended length field cut short")
        n, start = int.from_bytes(raw[3:5], "little"), 5
    if len(raw) - start != n:
        raise ZvtError(f"APDU {raw[0]:02X} {raw[1]:02X} says {n} data bytes, "
                       f"has {len(raw) - start}")
    return Apdu(raw[0], raw[1], bytes(raw[start:]))


def positive() -> bytes:
    return encode_apdu(0x80, 0x00)


def negative(error: int) -> bytes:
    return encode_apdu(NEGATIVE_CLASS, error)


# ---------------------------------------------------------------------------- bitmaps
# Value format of each BMP: an int = fixed length; "LL"/"LLL" = FxFy(Fz) decimal length
# first; "TLV" = a BER length (81 xx / 82 xx xx) then TLV objects. Lengths agree in
# ecrterm bitmaps.py and Portalum BmpParser.cs (for 2D/2E they disagree: ecrterm's LL/LLL
# is taken).
BMP_FORMATS: dict[int, int | str] = {
    0x01: 1, 0x02: 1, 0x03: 1, 0x04: 6, 0x05: 1, 0x06: "TLV", 0x0B: 3, 0x0C: 3, 0x0D: 2,
    0x0E: 2, 0x17: 2, 0x19: 1, 0x22: "LL", 0x23: "LL", 0x24: "LLL", 0x27: 1, 0x29: 4,
    0x2A: 15, 0x2D: "LL", 0x2E: "LLL", 0x37: 3, 0x3A: 2, 0x3B: 8, 0x3C: "LLL", 0x3D: 3,
    0x49: 2, 0x60: "LLL", 0x87: 2, 0x88: 3, 0x8A: 1, 0x8B: "LL", 0x8C: 1, 0x92: "LLL",
    0x9A: "LLL", 0xA0: 1, 0xA7: "LL", 0xAA: 3, 0xAF: "LLL", 0xBA: 5, 0xD0: 1, 0xD1: "LL",
    0xD2: 1, 0xD3: 1, 0xE0: 1, 0xE9: 1, 0xEA: 1, 0xEB: 8, 0xF0: 1, 0xF9: 1, 0xFA: 1,
    0xFB: 1, 0xFC: 1,
    **{b: "LL" for b in (*range(0xE1, 0xE9), *range(0xF1, 0xF9))},
}
# Card data: stepped over, never decoded or kept (PAN, tracks, chip data, expiry, card
# sequence number, CVV); of the PAN (22) only its last four digits are kept.
CARD_DATA_BMPS = frozenset({0x22, 0x23, 0x24, 0x2D, 0x2E, 0x0E, 0x17, 0x3A})


def _var_length(data: bytes, at: int, digits: int) -> int:
    if at + digits > len(data):
        raise ZvtError("length header cut short")
    n = 0
    for b in data[at:at + digits]:
        if b & 0xF0 != 0xF0 or b & 0x0F > 9:
            raise ZvtError(f"bad L*VAR length byte {b:02X}")
        n = n * 10 + (b & 0x0F)
    return n


def _ber_length(data: bytes, at: int) -> tuple[int, int]:
    if at >= len(data):
        raise ZvtError("TLV length missing")
    first = data[at]
    if first < 0x80:
        return first, 1
    extra = first & 0x7F
    if extra not in (1, 2) or at + 1 + extra > len(data):
        raise ZvtError(f"bad TLV length {data[at:at + 3].hex(' ')}")
    return int.from_bytes(data[at + 1:at + 1 + extra], "big"), 1 + extra


def parse_bmps(data: bytes) -> tuple[dict[int, bytes], str | None]:
    """BMP tag -> value bytes (without length headers), and why parsing stopped early (None
    when everything was read). An unknown tag, a bad length header or a value cut short
    stop the walk there: what came before is kept, because a terminal newer than this table
    may append BMPs we do not know. Card data BMPs are skipped, but for BMP 22 (PAN), whose
    value here is only its last four digits in ASCII (b"0119"; b"" when it is no card
    number). Never raises."""
    out: dict[int, bytes] = {}
    at = 0
    while at < len(data):
        tag = data[at]
        fmt = BMP_FORMATS.get(tag)
        if fmt is None:
            return out, f"unknown BMP {tag:02X}"
        try:
            if isinstance(fmt, int):
                start, n = at + 1, fmt
            elif fmt == "TLV":
                n, header = _ber_length(data, at + 1)
                start = at + 1 + header
            else:
                digits = len(fmt)
                n, start = _var_length(data, at + 1, digits), at + 1 + digits
        except ZvtError as exc:
            return out, f"BMP {tag:02X}: {exc}"
        if start + n > len(data):
            return out, f"BMP {tag:02X} cut short"
        if tag == BMP_PAN:
            out[tag] = last4(data[start:start + n]).encode("ascii")
        elif tag not in CARD_DATA_BMPS:
            out[tag] = bytes(data[start:start + n])
        at = start + n
    return out, None


def llvar(value: bytes, digits: int = 2) -> bytes:
    if len(value) >= 10 ** digits:
        raise ZvtError(f"{len(value)} bytes do not fit an {'L' * digits}VAR")
    header = bytes(0xF0 | int(d) for d in str(len(value)).rjust(digits, "0"))
    return header + value


def text(data: bytes) -> str:
    """Terminal text: code page 437 (the ZVT default character set), NULs and padding off."""
    return redact(data.decode("cp437").replace("\x00", "").strip())


# ---------------------------------------------------------------------------- ECR -> terminal
class Config(IntEnum):
    """Registration config byte (ecrterm types.ConfigByte, Portalum RegistrationConfig)."""
    ECR_PRINTS_PAYMENT_RECEIPTS = 0x02
    ECR_PRINTS_ADMIN_RECEIPTS = 0x04
    INTERMEDIATE_STATUS = 0x08
    ECR_CONTROLS_PAYMENT = 0x10
    ECR_CONTROLS_ADMIN = 0x20
    PRINT_LINES = 0x80                  # receipts as 06 D1 lines (not 06 D3 text blocks)


SERVICE_MENU_LOCKED = 0x01              # service byte: the terminal's function key cannot
                                        # open the service menu (a kiosk customer must not)


def registration(password: str, config: int, currency: int | None = None,
                 service: int | None = SERVICE_MENU_LOCKED) -> bytes:
    """06 00: <password> <config> [<currency> [03 <service>]]; currency ISO 4217 numeric,
    2 BCD bytes (PHP 608 -> 06 08)."""
    data = password_bytes(password) + bytes((config,))
    if currency is not None:
        data += bcd(currency, 2)
        if service is not None:
            data += bytes((0x03, service))
    return encode_apdu(0x06, 0x00, data)


def authorisation(amount: int, currency: int | None = None) -> bytes:
    """06 01: 04 <amount, 6 BCD bytes, minor units> [49 <currency>]."""
    if not 0 < amount <= 999_999_999_999:
        raise ZvtError(f"amount {amount} out of range")
    data = b"\x04" + bcd(amount, 6)
    if currency is not None:
        data += b"\x49" + bcd(currency, 2)
    return encode_apdu(0x06, 0x01, data)


def reversal(password: str, receipt_no: str) -> bytes:
    """06 30: <password> 87 <receipt number, 2 BCD bytes>."""
    return encode_apdu(0x06, 0x30, password_bytes(password) + b"\x87" + bcd(receipt_no, 2))


def status_enquiry(password: str) -> bytes:
    return encode_apdu(0x05, 0x01, password_bytes(password))


def repeat_receipt(password: str) -> bytes:
    return encode_apdu(0x06, 0x20, password_bytes(password))


def ecr_abort() -> bytes:
    return encode_apdu(0x06, 0xB0)


@dataclass(frozen=True)
class Command:
    """An ECR command as the terminal reads it (the simulator's side)."""
    code: int
    password: str = ""
    config: int | None = None
    currency: int | None = None
    service: int | None = None
    amount: int | None = None
    receipt_no: str = ""


_WITH_PASSWORD = {Code.REGISTRATION, Code.REVERSAL, Code.STATUS_ENQUIRY, Code.REPEAT_RECEIPT}


def parse_command(apdu: Apdu) -> Command:
    data = apdu.data
    if apdu.code not in _WITH_PASSWORD:
        bmps, _ = parse_bmps(data)
        return _command(apdu.code, "", bmps)
    if len(data) < 3:
        raise ZvtError(f"{apdu} lacks the password")
    password, rest = bcd_digits(data[:3]), data[3:]
    if apdu.code != Code.REGISTRATION:
        return _command(apdu.code, password, parse_bmps(rest)[0])
    if not rest:
        raise ZvtError("registration lacks the config byte")
    config, rest = rest[0], rest[1:]
    currency = bcd_int(rest[:2]) if len(rest) >= 2 else None
    bmps, _ = parse_bmps(rest[2:])
    return Command(apdu.code, password, config, currency,
                   bmps[0x03][0] if 0x03 in bmps else None)


def _command(code: int, password: str, bmps: dict[int, bytes]) -> Command:
    return Command(code, password,
                   currency=bcd_int(bmps[0x49]) if 0x49 in bmps else None,
                   amount=bcd_int(bmps[0x04]) if 0x04 in bmps else None,
                   receipt_no=bcd_digits(bmps[0x87]) if 0x87 in bmps else "")


# ---------------------------------------------------------------------------- terminal -> ECR
# Intermediate status codes (04 FF) -> a text for the customer. Codes and meanings from
# Portalum EnglishIntermediateStatusRepository and kotlin-zvt-library ZvtConstants (they
# agree); wording shortened for a kiosk screen. 0x0B is "remove card", not "enter PIN":
# PIN entry is 0x01/0x02 "watch the PIN pad".
INTERMEDIATE_TEXTS: dict[int, str] = {
    0x00: "Please confirm the amount", 0x01: "Please enter your PIN on the card terminal",
    0x02: "Please enter your PIN on the card terminal", 0x03: "Not accepted",
    0x04: "Waiting for the bank", 0x05: "Cancelling the payment",
    0x06: "Please wait", 0x07: "Card not accepted", 0x08: "Card unknown",
    0x09: "Card expired", 0x0A: "Insert, tap or swipe your card", 0x0B: "Please remove your card",
    0x0C: "Card not readable", 0x0D: "Processing error", 0x0E: "Please wait",
    0x10: "Invalid card", 0x12: "System malfunction", 0x13: "Payment not possible",
    0x14: "Not enough credit", 0x15: "Incorrect PIN", 0x16: "Limit not sufficient",
    0x17: "Please wait", 0x18: "PIN tries exceeded", 0x19: "Card data incorrect",
    0x1C: "Approved", 0x1D: "Declined", 0x2C: "Choose the application on the terminal",
    0x68: "Card detected", 0xE0: "Choose the application on the terminal",
    0xE1: "Choose the language on the terminal",
}
STATUS_REMOVE_CARD_OFFSET = 0x40     # 0x41..0x5D = the 0x01..0x1D text + "remove card"

# Result codes (BMP 27, 06 1E, 84 xx): 00 success, 01..63 the card issuer's answer
# (ISO 8583 style, e.g. 05 "do not honour"), 64.. the terminal's own (Portalum
# EnglishErrorMessageRepository; only those the kiosk reacts to are named here).
RESULT_OK = 0x00
RESULT_DECLINED = 0x05
RESULT_ABORTED = 0x6C                # "abort via timeout or abort-key"
RESULT_NOT_REGISTERED = 0x6B         # "function deactivated (PT not registered)"
RESULT_FUNCTION_NOT_POSSIBLE = 0x83
RESULT_PLEASE_WAIT = 0x9C
RESULT_ALREADY_REVERSED = 0xB4
RESULT_REVERSAL_NOT_POSSIBLE = 0xB5
RESULT_SYSTEM_ERROR = 0xFF


def intermediate_text(code: int) -> str:
    if code in INTERMEDIATE_TEXTS:
        return INTERMEDIATE_TEXTS[code]
    base = code - STATUS_REMOVE_CARD_OFFSET
    if base in INTERMEDIATE_TEXTS:
        return f"{INTERMEDIATE_TEXTS[base]} - please remove your card"
    return "Please wait"


@dataclass(frozen=True)
class IntermediateStatus:
    code: int
    text: str
    timeout_s: int | None = None


def intermediate_status(code: int, timeout_s: int | None = None) -> bytes:
    """04 FF: <status> [<timeout, s>]."""
    data = bytes((code,)) + (bytes((timeout_s,)) if timeout_s is not None else b"")
    return encode_apdu(0x04, 0xFF, data)


def parse_intermediate_status(apdu: Apdu) -> IntermediateStatus:
    if not apdu.data:
        raise ZvtError("intermediate status without a status byte")
    timeout = apdu.data[1] if len(apdu.data) > 1 else None
    return IntermediateStatus(apdu.data[0], intermediate_text(apdu.data[0]), timeout)


@dataclass(frozen=True)
class PrintLine:
    text: str
    attribute: int = 0

    @property
    def last(self) -> bool:
        """1xxx xxxx, except 80 (RFU) and FF (line feeds), marks the last line."""
        return bool(self.attribute & 0x80) and self.attribute not in (0x80, 0xFF)


def print_line(line: str, attribute: int = 0) -> bytes:
    """06 D1: <attribute> <text, CP437>; characters CP437 lacks become '?'."""
    return encode_apdu(0x06, 0xD1, bytes((attribute,)) + line.encode("cp437", "replace"))


def parse_print_line(apdu: Apdu) -> PrintLine:
    if not apdu.data:
        raise ZvtError("print line without an attribute byte")
    attribute = apdu.data[0]
    if attribute == 0xFF:                          # n line feeds
        return PrintLine("", attribute)
    return PrintLine(redact(apdu.data[1:].decode("cp437").rstrip("\x00 ")), attribute)


@dataclass(frozen=True)
class StatusInformation:
    """04 0F, the result of a payment, a reversal or a repeated receipt. No card number:
    the BMPs that carry card data are never decoded, but for the last four digits of the
    PAN (`parse_bmps`)."""
    result_code: int | None = None        # 27
    amount: int | None = None             # 04, minor units
    currency: int | None = None           # 49
    trace: str = ""                       # 0B
    original_trace: str = ""              # 37: set in the answer to a reversal
    time: str = ""                        # 0C HHMMSS
    date: str = ""                        # 0D MMDD
    terminal_id: str = ""                 # 29
    vu_number: str = ""                   # 2A, the merchant number at the acquirer
    auth_code: str = ""                   # 3B "AID authorisation-attribute"
    receipt_no: str = ""                  # 87
    turnover_no: str = ""                 # 88
    card_type: int | None = None          # 8A, ZVT card-type id (6 Mastercard, 10 Visa)
    card_name: str = ""                   # 8B
    payment_type: int | None = None       # 19
    result_code_as: int | None = None     # A0
    additional_text: str = ""             # 3C
    card_last4: str = ""                  # 22: the last four digits of the PAN, nothing more
    stopped: str | None = None            # why parsing stopped early (unknown BMP, ...)

    @property
    def approved(self) -> bool:
        return self.result_code == RESULT_OK

    @property
    def reversal(self) -> bool:
        return bool(self.original_trace)


_BCD_TEXT = {0x0B: "trace", 0x37: "original_trace", 0x0C: "time", 0x0D: "date",
             0x29: "terminal_id", 0x87: "receipt_no", 0x88: "turnover_no"}
_ASCII = {0x2A: "vu_number", 0x3B: "auth_code", 0x8B: "card_name", 0x3C: "additional_text"}
_BYTE = {0x27: "result_code", 0x8A: "card_type", 0x19: "payment_type", 0xA0: "result_code_as"}


def parse_status_information(apdu: Apdu) -> StatusInformation:
    """Every BMP known here is decoded; an unknown one ends the walk (`stopped`). A value
    that is not what its BMP promises (BCD with a non-digit) raises ZvtError."""
    bmps, stopped = parse_bmps(apdu.data)
    values: dict[str, object] = {"stopped": stopped}
    for tag, value in bmps.items():
        if tag in _BCD_TEXT:
            values[_BCD_TEXT[tag]] = bcd_digits(value)
        elif tag in _ASCII:
            values[_ASCII[tag]] = text(value)
        elif tag in _BYTE:
            values[_BYTE[tag]] = value[0]
        elif tag == 0x04:
            values["amount"] = bcd_int(value)
        elif tag == 0x49:
            values["currency"] = bcd_int(value)
        elif tag == BMP_PAN:
            values["card_last4"] = value.decode("ascii")
    return StatusInformation(**values)   # type: ignore[arg-type]


def status_information(info: StatusInformation, extra: bytes = b"") -> bytes:
    """04 0F with the BMPs of `info` that are set, then `extra` (more BMPs, e.g. a whole
    BMP 22 from `pan.pan_bmp`) (the simulator's side). `card_last4` is not sent: a
    terminal sends the whole, masked or clear, PAN."""
    data = bytearray()
    sizes = {0x0B: 3, 0x37: 3, 0x0C: 3, 0x0D: 2, 0x29: 4, 0x87: 2, 0x88: 3}
    for f in fields(StatusInformation):
        value = getattr(info, f.name)
        if value in (None, "") or f.name in ("stopped", "card_last4"):
            continue
        if f.name == "amount":
            data += b"\x04" + bcd(value, 6)
        elif f.name == "currency":
            data += b"\x49" + bcd(value, 2)
        elif (tag := _key(_BCD_TEXT, f.name)) is not None:
            data += bytes((tag,)) + bcd(value, sizes[tag])
        elif (tag := _key(_BYTE, f.name)) is not None:
            data += bytes((tag, value))
        elif (tag := _key(_ASCII, f.name)) is not None:
            raw = value.encode("cp437", "replace")
            if tag in (0x2A, 0x3B):                # fixed length, NUL padded
                width = BMP_FORMATS[tag]
                assert isinstance(width, int)
                data += bytes((tag,)) + raw[:width].ljust(width, b"\x00")
            else:
                data += bytes((tag,)) + llvar(raw, 3 if tag == 0x3C else 2)
    return encode_apdu(0x04, 0x0F, bytes(data) + extra)


def _key(table: dict[int, str], name: str) -> int | None:
    return next((tag for tag, n in table.items() if n == name), None)


@dataclass(frozen=True)
class Completion:
    """06 0F: the terminal gives the master rights back."""
    terminal_id: str = ""
    currency: int | None = None
    status_byte: int | None = None        # BMP 19 (after registration)
    sw_version: str = ""                  # after a status enquiry
    terminal_status: int | None = None    # after a status enquiry: 00 = ready
    stopped: str | None = None


def completion(terminal_id: str = "", currency: int | None = None,
               sw_version: str | None = None, terminal_status: int | None = None) -> bytes:
    """06 0F: [<sw-version LLLVAR> <terminal-status>] [29 <TID>] [49 <currency>]."""
    data = bytearray()
    if terminal_status is not None:
        data += llvar((sw_version or "").encode("ascii"), 3) + bytes((terminal_status,))
    if terminal_id:
        data += b"\x29" + bcd(terminal_id, 4)
    if currency is not None:
        data += b"\x49" + bcd(currency, 2)
    return encode_apdu(0x06, 0x0F, bytes(data))


def parse_completion(apdu: Apdu, after_status_enquiry: bool = False) -> Completion:
    """After a status enquiry the data opens with the software version (LLLVAR) and the
    terminal status byte; after other commands it holds BMPs only. ecrterm notes that the
    two cannot be told apart from the bytes alone, so the caller says which it expects."""
    data = apdu.data
    sw, status = "", None
    if after_status_enquiry and data:
        if len(data) >= 3 and all(b & 0xF0 == 0xF0 and b & 0x0F <= 9 for b in data[:3]):
            n = _var_length(data, 0, 3)
            if 3 + n > len(data):
                raise ZvtError("software version cut short")
            sw, data = text(data[3:3 + n]), data[3 + n:]
        if data:
            status, data = data[0], data[1:]
    bmps, stopped = parse_bmps(data)
    return Completion(terminal_id=bcd_digits(bmps[0x29]) if 0x29 in bmps else "",
                      currency=bcd_int(bmps[0x49]) if 0x49 in bmps else None,
                      status_byte=bmps[0x19][0] if 0x19 in bmps else None,
                      sw_version=sw, terminal_status=status, stopped=stopped)


def abort(result_code: int) -> bytes:
    """06 1E <result code>: the terminal ends the command unsuccessfully."""
    return encode_apdu(0x06, 0x1E, bytes((result_code,)))


def parse_abort(apdu: Apdu) -> int:
    """The result code of a 06 1E (an abort without one is reported as a system error)."""
    return apdu.data[0] if apdu.data else RESULT_SYSTEM_ERROR

