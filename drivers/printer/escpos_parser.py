"""ESC/POS as the printer reads it: a pure, streaming parser, and the real-time status bytes.

No I/O here (sans-I/O, like h11): `EscposParser.feed(bytes)` returns the commands that are
complete so far as typed events and keeps the rest for the next call, so a serial port may
deliver the stream in any fragments. The simulator (`escpos_sim.py`) turns the events into
paper; the driver (`escpos.py`) uses the status half (`status_request`, `PrinterStatus`).

Commands understood (Epson ESC/POS, as python-escpos 3.1 sends them):

    LF                  print the line, feed one line           -> LineFeed
    HT                  horizontal tab                          -> Tab
    ESC @               initialise (clears the line buffer)     -> Init
    ESC ! n / GS ! n    print mode / character size             -> Setting("mode"/"size")
    ESC E n, ESC - n,   bold, underline, invert, align, font,   -> Setting(...)
    GS B n, ESC a n,    code page, upside down, line spacing
    ESC M n, ESC t n, ESC { n, ESC 2, ESC 3 n, ESC A n, ESC + n
    ESC d n / ESC J n   print and feed n lines / n dots         -> Feed
    GS ( k pL pH cn fn  2D codes; QR (cn 49): fn 65 model, 67    -> Setting("qr_*"),
                        module size, 69 error correction,          QrStore, QrPrint
                        80 store data, 81 print
    GS v 0 m xL xH yL yH d1..dk   raster image, k = x * y bytes -> Raster (payload skipped)
    GS V m [n]          cut (m 0/48 full, 1/49 partial; 65/66,  -> Cut
                        97/98, 103/104 take a feed amount n);
    ESC i, ESC m        the obsolete partial cuts               -> Cut
    DLE EOT n           real-time status, n = 1..4              -> StatusRequest (answer!)

Known commands that have no effect on the simulated paper are consumed with their exact
length and reported as Skipped (barcodes GS k, GS ( L / GS 8 L graphics, ESC * column
images, GS * / FS p NV images, ESC D tabs, ESC & user characters, ESC ( / FS ( blocks,
ESC p drawer kick, DLE ENQ, DLE DC4, GS H/h/w/f barcode settings, ...). Commands that
make a real printer *answer* besides DLE EOT 1-4 (GS r, GS I, ESC v, GS ( k fn 82,
DLE EOT 7/8) are consumed but not answered. An unknown ESC/GS/FS x consumes those two bytes
only (Unknown): its parameters, if it had any, then print as text, as on a real printer
that does not know it. Other control bytes (CR, NUL, FF, ...) are dropped.

DLE EOT is recognised between commands only: Epson's manuals warn that a real printer may
also take a DLE EOT n found inside another command's data for a real-time command, which
is why the driver never sends one in the middle of a command.
"""

from __future__ import annotations

from dataclasses import dataclass

NUL, HT, LF, DLE, EOT, ENQ, DC4 = 0x00, 0x09, 0x0A, 0x10, 0x04, 0x05, 0x14
ESC, FS, GS = 0x1B, 0x1C, 0x1D

# ------------------------------------------------------------------------------ events


class Event:
    """One command (or a run of text) from the host."""


@dataclass(frozen=True)
class Text(Event):
    data: bytes                    # printable bytes, in the code page selected by ESC t


@dataclass(frozen=True)
class LineFeed(Event):
    pass


@dataclass(frozen=True)
class Tab(Event):
    pass


@dataclass(frozen=True)
class Init(Event):
    pass


@dataclass(frozen=True)
class Feed(Event):
    lines: int = 0                 # ESC d n
    dots: int = 0                  # ESC J n


@dataclass(frozen=True)
class Setting(Event):
    name: str                      # align, bold, underline, mode, size, invert, font, ...
    value: int


@dataclass(frozen=True)
class QrStore(Event):
    data: bytes


@dataclass(frozen=True)
class QrPrint(Event):
    pass


@dataclass(frozen=True)
class Raster(Event):
    mode: int
    width_bytes: int
    height: int


@dataclass(frozen=True)
class Cut(Event):
    partial: bool
    feed: int = 0                  # dots fed before the cut (GS V 65/66/97/98/103/104 n)


@dataclass(frozen=True)
class StatusRequest(Event):
    n: int                         # DLE EOT n: 1 printer, 2 offline cause, 3 error, 4 paper


@dataclass(frozen=True)
class Skipped(Event):
    name: str                      # a known command without effect here, consumed whole


@dataclass(frozen=True)
class Unknown(Event):
    data: bytes                    # the bytes dropped (prefix and command byte)


# ------------------------------------------------------------------------------ tables

# ESC x with a fixed number of parameter bytes, and the Setting each one makes (or None:
# consumed and reported as Skipped).
_ESC_FIXED: dict[int, tuple[int, str | None]] = {
    ord("@"): (0, None), ord("!"): (1, "mode"), ord("E"): (1, "bold"),
    ord("-"): (1, "underline"), ord("a"): (1, "align"), ord("M"): (1, "font"),
    ord("t"): (1, "codepage"), ord("{"): (1, "upside_down"), ord("G"): (1, "double_strike"),
    ord("2"): (0, "line_spacing"), ord("3"): (1, "line_spacing"), ord("A"): (1, "line_spacing"),
    ord("+"): (1, "line_spacing"), ord("d"): (1, None), ord("J"): (1, None),
    ord("r"): (1, "color"), ord("V"): (1, "rotate"), ord("R"): (1, "charset"),
    ord(" "): (1, None), ord("$"): (2, None), ord("\\"): (2, None), ord("%"): (1, None),
    ord("?"): (1, None), ord("="): (1, None), ord("<"): (0, None), ord("L"): (0, None),
    ord("S"): (0, None), ord("T"): (1, None), ord("U"): (1, None), ord("W"): (8, None),
    ord("c"): (2, None), ord("e"): (1, None), ord("f"): (2, None), ord("i"): (0, None),
    ord("m"): (0, None), ord("p"): (3, None), ord("u"): (1, None), ord("v"): (0, None),
    ord("B"): (2, None), ord("K"): (1, None),
}

_GS_FIXED: dict[int, tuple[int, str | None]] = {
    ord("!"): (1, "size"), ord("B"): (1, "invert"), ord("b"): (1, "smoothing"),
    ord("|"): (1, "density"), ord("H"): (1, None), ord("h"): (1, None), ord("w"): (1, None),
    ord("f"): (1, None), ord("I"): (1, None), ord("r"): (1, None), ord("a"): (1, None),
    ord("L"): (2, None), ord("W"): (2, None), ord("P"): (2, None), ord("$"): (2, None),
    ord("\\"): (2, None), ord("^"): (3, None), ord("T"): (1, None), ord(":"): (0, None),
    ord("/"): (1, None), ord("E"): (1, None),
}

_FS_FIXED: dict[int, int] = {
    ord("p"): 2, ord("!"): 1, ord("&"): 0, ord("."): 0, ord("-"): 1, ord("S"): 2,
    ord("W"): 1, ord("C"): 1,
}

_DC4_ARGS = {1: 2, 2: 2, 7: 1, 8: 7}      # DLE DC4 fn ...: pulse, power off, buzzer, clear
_CUT_WITH_N = {65: False, 66: True, 97: False, 98: True, 103: False, 104: True}
_BARCODE_NUL_MAX = 256                     # GS k m d1..dk NUL: longest data looked at


def _arg(n: int) -> int:
    """Many one-byte switches take either 0/1/2 or the ASCII digits '0'/'1'/'2'."""
    return n - 48 if 48 <= n <= 57 else n


# ------------------------------------------------------------------------------ parser

_Step = tuple[int, Event | None, int]      # (bytes consumed, event, payload bytes to skip)
_MORE: _Step = (0, None, 0)                # the command is not complete yet


class EscposParser:
    """Bytes in, events out. Never raises on any input; memory stays bounded (payloads
    the simulator does not need, like raster images, are skipped as they arrive)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip = 0                     # payload bytes of the last command still to drop

    def feed(self, data: bytes) -> list[Event]:
        if self._skip:
            n = min(self._skip, len(data))
            self._skip -= n
            data = data[n:]
        buf = self._buf
        buf += data
        out: list[Event] = []
        pos = 0
        while pos < len(buf):
            if buf[pos] >= 0x20:
                end = pos
                while end < len(buf) and buf[end] >= 0x20:
                    end += 1
                out.append(Text(bytes(buf[pos:end])))
                pos = end
                continue
            used, event, skip = self._command(buf, pos)
            if used == 0:
                break
            pos += used
            if event is not None:
                out.append(event)
            if skip:
                n = min(skip, len(buf) - pos)
                pos += n
                self._skip = skip - n
        del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes held for an incomplete command, plus payload bytes still to skip."""
        return len(self._buf) + self._skip

    # -------------------------------------------------------------- one command at pos
    def _command(self, buf: bytearray, pos: int) -> _Step:
        b = buf[pos]
        if b == LF:
            return 1, LineFeed(), 0
        if b == HT:
            return 1, Tab(), 0
        if b not in (ESC, GS, FS, DLE):
            return 1, None, 0                       # CR, NUL, FF, ...: dropped
        if pos + 1 >= len(buf):
            return _MORE
        c = buf[pos + 1]
        if b == ESC:
            return self._esc(buf, pos, c)
        if b == GS:
            return self._gs(buf, pos, c)
        if b == FS:
            return self._fs(buf, pos, c)
        return self._dle(buf, pos, c)

    def _esc(self, buf: bytearray, pos: int, c: int) -> _Step:
        avail = len(buf) - pos
        if c in _ESC_FIXED:
            nargs, name = _ESC_FIXED[c]
            if avail < 2 + nargs:
                return _MORE
            args = buf[pos + 2:pos + 2 + nargs]
            return 2 + nargs, _esc_event(c, name, args), 0
        if c == ord("*"):                           # ESC * m nL nH d1..dk (column image)
            if avail < 5:
                return _MORE
            m, dots = buf[pos + 2], buf[pos + 3] + 256 * buf[pos + 4]
            per_column = {0: 1, 1: 1, 32: 3, 33: 3}.get(m)
            if per_column is None:
                return 2, Unknown(bytes(buf[pos:pos + 2])), 0
            return 5, Skipped("ESC * column image"), dots * per_column
        if c == ord("D"):                           # ESC D n1..nk NUL (k <= 32)
            end = buf.find(NUL, pos + 2, pos + 2 + 33)
            if end < 0:
                return _MORE if avail < 2 + 33 else (2 + 33, Skipped("ESC D tabs"), 0)
            return end + 1 - pos, Skipped("ESC D tabs"), 0
        if c == ord("&"):
            return self._user_chars(buf, pos)
        if c == ord("("):                           # ESC ( x pL pH ...
            return self._length_prefixed(buf, pos, "ESC (")
        return 2, Unknown(bytes(buf[pos:pos + 2])), 0

    def _user_chars(self, buf: bytearray, pos: int) -> _Step:
        """ESC & y c1 c2 [x d1..d(y*x)]...: user-defined characters, consumed whole."""
        if len(buf) - pos < 5:
            return _MORE
        y, c1, c2 = buf[pos + 2], buf[pos + 3], buf[pos + 4]
        at = pos + 5
        for _ in range(max(0, c2 - c1 + 1)):
            if at >= len(buf):
                return _MORE
            at += 1 + y * buf[at]
        if at > len(buf):
            return _MORE
        return at - pos, Skipped("ESC & user characters"), 0

    def _length_prefixed(self, buf: bytearray, pos: int, name: str) -> _Step:
        """X ( x pL pH d1..d(pL+pH*256): the payload is skipped without being held."""
        if len(buf) - pos < 5:
            return _MORE
        size = buf[pos + 3] + 256 * buf[pos + 4]
        return 5, Skipped(f"{name} {chr(buf[pos + 2])}"), size

    def _gs(self, buf: bytearray, pos: int, c: int) -> _Step:
        avail = len(buf) - pos
        if c in _GS_FIXED:
            nargs, name = _GS_FIXED[c]
            if avail < 2 + nargs:
                return _MORE
            if name is None:
                return 2 + nargs, Skipped(f"GS {chr(c)}"), 0
            return 2 + nargs, Setting(name, buf[pos + 2]), 0
        if c == ord("("):
            if avail < 3:
                return _MORE
            if buf[pos + 2] == ord("k"):
                return self._two_d(buf, pos)
            return self._length_prefixed(buf, pos, "GS (")
        if c == ord("v"):                           # GS v 0 m xL xH yL yH d1..dk
            if avail < 3:
                return _MORE
            if buf[pos + 2] != ord("0"):
                return 2, Unknown(bytes(buf[pos:pos + 2])), 0
            if avail < 8:
                return _MORE
            m = buf[pos + 3]
            width = buf[pos + 4] + 256 * buf[pos + 5]
            height = buf[pos + 6] + 256 * buf[pos + 7]
            return 8, Raster(m, width, height), width * height
        if c == ord("V"):
            if avail < 3:
                return _MORE
            m = buf[pos + 2]
            if m in (0, 48, 1, 49):
                return 3, Cut(partial=m in (1, 49)), 0
            if m in _CUT_WITH_N:
                if avail < 4:
                    return _MORE
                return 4, Cut(partial=_CUT_WITH_N[m], feed=buf[pos + 3]), 0
            return 3, Unknown(bytes(buf[pos:pos + 3])), 0
        if c == ord("8"):                           # GS 8 x p1 p2 p3 p4 d1..dk
            if avail < 7:
                return _MORE
            size = int.from_bytes(buf[pos + 3:pos + 7], "little")
            return 7, Skipped(f"GS 8 {chr(buf[pos + 2])}"), size
        if c == ord("k"):
            return self._barcode(buf, pos)
        if c == ord("*"):                           # GS * x y d1..d(x*y*8)
            if avail < 4:
                return _MORE
            return 4, Skipped("GS * bit image"), buf[pos + 2] * buf[pos + 3] * 8
        return 2, Unknown(bytes(buf[pos:pos + 2])), 0

    def _two_d(self, buf: bytearray, pos: int) -> _Step:
        """GS ( k pL pH cn fn [m] d1..dk; QR when cn = 49 ('1'). A QR command is held until
        complete (at most 65 535 bytes); any other 2D code streams past."""
        avail = len(buf) - pos
        if avail < 5:
            return _MORE
        size = buf[pos + 3] + 256 * buf[pos + 4]
        if size < 2:
            return 5, Skipped("GS ( k"), size
        if avail < 7:
            return _MORE
        cn, fn = buf[pos + 5], buf[pos + 6]
        if cn != 49 or fn not in (65, 67, 69, 80, 81):
            return 5, Skipped(f"GS ( k cn {cn} fn {fn}"), size
        if avail < 5 + size:
            return _MORE
        body = bytes(buf[pos + 7:pos + 5 + size])
        used = 5 + size
        if fn == 80:                                # m d1..dk
            return used, QrStore(body[1:]), 0
        if fn == 81:
            return used, QrPrint(), 0
        if not body:
            return used, Skipped(f"GS ( k QR fn {fn}"), 0
        name = {65: "qr_model", 67: "qr_size", 69: "qr_ec"}[fn]
        return used, Setting(name, body[0]), 0

    def _barcode(self, buf: bytearray, pos: int) -> _Step:
        """GS k m d1..dk NUL (m 0-6) or GS k m n d1..dn (m 65-79)."""
        avail = len(buf) - pos
        if avail < 3:
            return _MORE
        m = buf[pos + 2]
        if m <= 6:
            end = buf.find(NUL, pos + 3, pos + 3 + _BARCODE_NUL_MAX)
            if end < 0:
                if avail < 3 + _BARCODE_NUL_MAX:
                    return _MORE
                return 3 + _BARCODE_NUL_MAX, Skipped("GS k barcode"), 0
            return end + 1 - pos, Skipped("GS k barcode"), 0
        if 65 <= m <= 79:
            if avail < 4:
                return _MORE
            return 4, Skipped("GS k barcode"), buf[pos + 3]
        return 3, Unknown(bytes(buf[pos:pos + 3])), 0

    def _fs(self, buf: bytearray, pos: int, c: int) -> _Step:
        if c in _FS_FIXED:
            nargs = _FS_FIXED[c]
            if len(buf) - pos < 2 + nargs:
                return _MORE
            return 2 + nargs, Skipped(f"FS {chr(c)}"), 0
        if c == ord("("):
            return self._length_prefixed(buf, pos, "FS (")
        return 2, Unknown(bytes(buf[pos:pos + 2])), 0

    def _dle(self, buf: bytearray, pos: int, c: int) -> _Step:
        avail = len(buf) - pos
        if c not in (EOT, ENQ, DC4):
            return 1, Unknown(bytes(buf[pos:pos + 1])), 0   # a stray DLE
        if avail < 3:
            return _MORE
        n = buf[pos + 2]
        if c == EOT:
            if 1 <= n <= 4:
                return 3, StatusRequest(n), 0
            if n in (7, 8):                         # DLE EOT 7/8 a: ink status, not answered
                return (4, Skipped(f"DLE EOT {n}"), 0) if avail >= 4 else _MORE
            return 3, Unknown(bytes(buf[pos:pos + 3])), 0
        if c == ENQ:
            return 3, Skipped("DLE ENQ"), 0
        nargs = _DC4_ARGS.get(n)
        if nargs is None:
            return 3, Unknown(bytes(buf[pos:pos + 3])), 0
        if avail < 3 + nargs:
            return _MORE
        return 3 + nargs, Skipped(f"DLE DC4 {n}"), 0


def _esc_event(c: int, name: str | None, args: bytearray) -> Event:
    if c == ord("@"):
        return Init()
    if c == ord("d"):
        return Feed(lines=args[0])
    if c == ord("J"):
        return Feed(dots=args[0])
    if c in (ord("i"), ord("m")):                  # the old one-byte partial cuts
        return Cut(partial=True)
    if name is None:
        return Skipped(f"ESC {chr(c)}")
    if name == "line_spacing":
        return Setting(name, args[0] if args else -1)     # ESC 2: back to the default
    if name in ("bold", "upside_down", "double_strike"):
        return Setting(name, args[0] & 1)
    if name in ("underline", "align", "font"):
        return Setting(name, _arg(args[0]))
    return Setting(name, args[0])


# ------------------------------------------------------------------------------ status

FIXED_MASK = 0x93          # bits 0, 1, 4, 7 of every DLE EOT answer: fixed ...
FIXED_BITS = 0x12          # ... to 0, 1, 1, 0
OFFLINE = 0x08             # n=1 bit 3
COVER_OPEN = 0x04          # n=2 bit 2
PAPER_END_STOP = 0x20      # n=2 bit 5: printing stopped by paper end
ERROR = 0x40               # n=2 bit 6
NEAR_END = 0x0C            # n=4 bits 2-3: near-end sensor
PAPER_END = 0x60           # n=4 bits 5-6: end sensor (no paper)


def status_request(n: int) -> bytes:
    """DLE EOT n, the real-time status request (answered at once, even when offline)."""
    if not 1 <= n <= 4:
        raise ValueError(f"DLE EOT n takes 1..4, not {n}")
    return bytes((DLE, EOT, n))


def is_status_byte(b: int) -> bool:
    """Every DLE EOT 1-4 answer has bits 1 and 4 set, bits 0 and 7 clear: a byte that does
    not is line noise (or an unsolicited status) and is not taken as the answer."""
    return b & FIXED_MASK == FIXED_BITS


def status_answer(n: int, *, paper: str, cover_open: bool, error: bool = False) -> int:
    """The byte a printer answers to DLE EOT n (the simulator's side). A printer with its
    cover open or out of paper is offline; a roll that has run out also trips the near-end
    sensor (0x7E for n=4, which python-escpos's paper_status reads as 0, no paper)."""
    out = paper == "out"
    match n:
        case 1:
            return FIXED_BITS | (OFFLINE if out or cover_open or error else 0)
        case 2:
            return (FIXED_BITS | (COVER_OPEN if cover_open else 0)
                    | (PAPER_END_STOP if out else 0) | (ERROR if error else 0))
        case 3:
            return FIXED_BITS
        case 4:
            return (FIXED_BITS | (NEAR_END if paper in ("near_end", "out") else 0)
                    | (PAPER_END if out else 0))
    raise ValueError(f"DLE EOT n takes 1..4, not {n}")


@dataclass(frozen=True)
class PrinterStatus:
    """What DLE EOT 1, 2 and 4 said (the driver's side)."""
    offline: bool
    cover_open: bool
    paper: str                  # "ok" | "near_end" | "out"
    error: bool = False

    @classmethod
    def decode(cls, printer: int, offline_cause: int, paper: int) -> PrinterStatus:
        if paper & PAPER_END or offline_cause & PAPER_END_STOP:
            state = "out"
        elif paper & NEAR_END:
            state = "near_end"
        else:
            state = "ok"
        return cls(offline=bool(printer & OFFLINE), cover_open=bool(offline_cause & COVER_OPEN),
                   paper=state, error=bool(offline_cause & ERROR))

    @property
    def problem(self) -> str:
        """Why nothing can be printed now ('' when the printer can print)."""
        if self.cover_open:
            return "cover open"
        if self.paper == "out":
            return "paper out"
        if self.error:
            return "printer error"
        if self.offline:
            return "printer offline"
        return ""
