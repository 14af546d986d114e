"""An ESC/POS receipt printer on the far side of a real pty, byte for byte.

The kiosk opens `sim.link` with pyserial exactly as it opens `/dev/serial/by-id/...`; the
pty, the link, unplugging and cleaning up are `drivers/ptysim.py`'s. Across an
`unplug(seconds)` the printer keeps its paper, cover and what it printed (a USB-serial
adapter pulled out of a printer that stays powered); only a command cut in half by the
unplug is lost. As a kiosk device it is the driver "escpos-sim" (drivers/registry.py): the
real ESC/POS driver on this simulator's link.

The simulator's thread runs `EscposParser` over what the host sends. DLE EOT n is answered at
once with the status byte of `escpos_parser.status_answer` (a real printer answers it even
while offline); everything else goes to `Printout`, the paper: text decoded with the code
page chosen by ESC t, lines ended by LF, QR codes stored and printed with GS ( k, raster
images skipped by their size header, and GS V cut ends a receipt.

Scenario controls, safe from any thread: `paper` ("ok" | "near_end" | "out"), `cover_open`,
`offline` (a printer switched off or hung: it reads and drops every byte and never
answers), `run_out_after(lines)`. While the paper is out or the cover is open the printer
is offline: status requests are answered, every other byte is parsed (to stay in step with
the stream) and discarded, as a real printer in error drops what it cannot print. Loading
paper again tears off what was printed and never cut: it is recorded as a receipt with
`cut=False`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace

from ..ptysim import PtySimulator
from . import escpos_parser as p

log = logging.getLogger("kiosk.printer.sim")

# ESC t n -> Python codec, Epson's numbering (the escpos-printer-db "default" profile that
# python-escpos 3.1 uses agrees). A page without a codec here is decoded as CP437.
CODE_PAGES: dict[int, str] = {
    0: "cp437", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865", 13: "cp857", 14: "cp737",
    15: "iso8859_7", 16: "cp1252", 17: "cp866", 18: "cp852", 19: "cp858", 21: "cp874",
    32: "cp720", 33: "cp775", 34: "cp855", 35: "cp861", 36: "cp862", 37: "cp864",
    38: "cp869", 39: "iso8859_2", 40: "iso8859_15", 44: "cp1125", 45: "cp1250",
    46: "cp1251", 47: "cp1253", 48: "cp1254", 49: "cp1255", 50: "cp1256", 51: "cp1257",
    52: "cp1258",
}
QR_EC = {48: "L", 49: "M", 50: "Q", 51: "H"}
ALIGN = {0: "left", 1: "center", 2: "right"}
RAW_KEEP = 1 << 20                     # bytes of raw input kept for debugging


@dataclass(frozen=True)
class LineStyle:
    """How a line was printed: the style when its first character arrived (ESC a only acts
    at the start of a line on a real printer)."""
    align: str = "left"
    bold: bool = False
    underline: int = 0
    width: int = 1                     # character magnification (ESC ! / GS !)
    height: int = 1
    invert: bool = False
    font: int = 0


@dataclass(frozen=True)
class QrSymbol:
    data: str                          # the stored data, decoded as UTF-8
    size: int                          # module size in dots (GS ( k fn 67)
    ec: str                            # "L" | "M" | "Q" | "H"
    model: int                         # 1 | 2 | 3 (micro)
    align: str


@dataclass
class PrintedReceipt:
    lines: list[str] = field(default_factory=list)
    qr: list[str] = field(default_factory=list)
    cut: bool = False
    styles: list[LineStyle] = field(default_factory=list)
    symbols: list[QrSymbol] = field(default_factory=list)
    images: list[tuple[int, int]] = field(default_factory=list)   # (width dots, height dots)
    feed_lines: int = 0

    @property
    def empty(self) -> bool:
        return not (self.lines or self.qr or self.images)


class Printout:
    """The paper: applies parser events, keeps finished receipts. Pure (no I/O, no lock)."""

    def __init__(self, width: int = 42) -> None:
        self.width = width
        self.receipts: list[PrintedReceipt] = []
        self.current = PrintedReceipt()
        self.unknown = 0                    # unknown commands seen (Unknown events)
        self.skipped = 0                    # known commands without effect on paper
        self.hard_wraps = 0                 # lines longer than the paper, broken by us
        self._init()

    def _init(self) -> None:
        self.style = LineStyle()
        self.codepage = 0
        self.qr_size, self.qr_ec, self.qr_model = 3, "L", 2
        self.qr_data = b""
        self.line = ""
        self.line_style: LineStyle | None = None

    def apply(self, e: p.Event) -> int:
        """Apply one event; returns the lines of paper it used (text lines and feeds)."""
        match e:
            case p.Text(data=data):
                return self._text(data.decode(CODE_PAGES.get(self.codepage, "cp437"),
                                              "replace"))
            case p.LineFeed():
                return self._flush(force=True)
            case p.Tab():
                return self._text(" " * (8 - len(self.line) % 8))
            case p.Feed(lines=n):
                used = self._flush(force=False) + n
                self.current.feed_lines += n
                return used
            case p.Init():
                self._init()                # the line buffer is cleared, not printed
            case p.Setting(name=name, value=v):
                self._setting(name, v)
            case p.QrStore(data=data):
                self.qr_data = data
            case p.QrPrint() if self.qr_data:
                self._flush(force=False)
                text = self.qr_data.decode("utf-8", "replace")
                self.current.qr.append(text)
                self.current.symbols.append(QrSymbol(text, self.qr_size, self.qr_ec,
                                                     self.qr_model, self.style.align))
            case p.Raster(width_bytes=w, height=h):
                self._flush(force=False)
                self.current.images.append((w * 8, h))
            case p.Cut():
                self._flush(force=False)
                self.current.cut = True
                self.receipts.append(self.current)
                self.current = PrintedReceipt()
            case p.Unknown():
                self.unknown += 1
            case p.Skipped():
                self.skipped += 1
        return 0

    def tear_off(self) -> PrintedReceipt | None:
        """What hangs out of the printer uncut (paper reloaded): recorded as cut=False."""
        self._flush(force=False)
        if self.current.empty:
            return None
        torn, self.current = self.current, PrintedReceipt()
        self.receipts.append(torn)
        return torn

    def _setting(self, name: str, v: int) -> None:
        s = self.style
        match name:
            case "align":
                self.style = replace(s, align=ALIGN.get(v, s.align))
            case "bold":
                self.style = replace(s, bold=bool(v))
            case "underline":
                self.style = replace(s, underline=v if v in (0, 1, 2) else s.underline)
            case "invert":
                self.style = replace(s, invert=bool(v & 1))
            case "font":
                self.style = replace(s, font=v)
            case "mode":                    # ESC ! n: font, bold, double height/width, underline
                self.style = replace(s, font=v & 1, bold=bool(v & 0x08),
                                     height=2 if v & 0x10 else 1, width=2 if v & 0x20 else 1,
                                     underline=1 if v & 0x80 else 0)
            case "size":                    # GS ! n: width - 1 in bits 4-6, height - 1 in 0-2
                self.style = replace(s, width=((v >> 4) & 7) + 1, height=(v & 7) + 1)
            case "codepage":
                self.codepage = v
            case "qr_size" if 1 <= v <= 16:
                self.qr_size = v
            case "qr_ec":
                self.qr_ec = QR_EC.get(v, self.qr_ec)
            case "qr_model" if 49 <= v <= 51:
                self.qr_model = v - 48

    def _text(self, text: str) -> int:
        used = 0
        for ch in text:
            if not self.line:
                self.line_style = self.style
            self.line += ch
            if len(self.line) * self.style.width > self.width:
                # Longer than the paper: a printer breaks it where the paper ends.
                self.hard_wraps += 1
                keep, self.line = self.line[:-1], ""
                self._record(keep)
                used += 1
                self.line_style = self.style
                self.line = ch
        return used

    def _flush(self, force: bool) -> int:
        if not self.line and not force:
            return 0
        if not self.line:
            self.line_style = self.style
        self._record(self.line)
        self.line = ""
        return 1

    def _record(self, text: str) -> None:
        self.current.lines.append(text)
        self.current.styles.append(self.line_style or self.style)
        self.line_style = None


class EscposSimulator(PtySimulator):
    link_name = "printer"
    temp_prefix = "escpos-"
    thread_name = "escpos-sim"
    what = "ESC/POS printer"
    logger = log

    def __init__(self, link_dir: str | None = None, width: int = 42) -> None:
        super().__init__(link_dir)
        self.parser = p.EscposParser()
        self.printout = Printout(width)
        self.raw = bytearray()                  # what the host sent (last RAW_KEEP bytes)
        self.status_requests: list[int] = []    # n of every DLE EOT n answered
        self.discarded = 0                      # events dropped while in error
        self.offline = False
        self.cover_open = False
        self._paper = "ok"
        self._lines_left: int | None = None
        self._lock = threading.RLock()

    @classmethod
    def for_driver(cls, width: int = 42, **_driver_options: object) -> EscposSimulator:
        """The printer for a kiosk's ESC/POS driver ("escpos-sim"): paper of its width."""
        return cls(width=width)

    # ------------------------------------------------------------------ the line
    def _new_line(self) -> None:
        with self._lock:
            self.parser = p.EscposParser()

    def _on_data(self, chunk: bytes) -> bytes:
        return self.receive(chunk)

    def receive(self, chunk: bytes) -> bytes:
        """What the printer does with bytes from the host; returns its answer bytes."""
        with self._lock:
            if self.offline:
                self.parser = p.EscposParser()    # switched off: it forgets half a command
                return b""
            self.raw += chunk
            del self.raw[:-RAW_KEEP]
            reply = bytearray()
            for e in self.parser.feed(chunk):
                if isinstance(e, p.StatusRequest):
                    self.status_requests.append(e.n)
                    reply.append(p.status_answer(e.n, paper=self._paper,
                                                 cover_open=self.cover_open))
                elif self._paper == "out" or self.cover_open:
                    self.discarded += 1
                else:
                    self._use_paper(self.printout.apply(e))
            return bytes(reply)

    def _use_paper(self, lines: int) -> None:
        if self._lines_left is None or not lines:
            return
        self._lines_left -= lines
        if self._lines_left <= 0:
            log.info("simulated printer: paper end")
            self._paper, self._lines_left = "out", None

    # ------------------------------------------------------------------ the printer
    @property
    def paper(self) -> str:
        with self._lock:
            return self._paper

    @paper.setter
    def paper(self, state: str) -> None:
        if state not in ("ok", "near_end", "out"):
            raise ValueError(f"paper is ok, near_end or out, not {state!r}")
        with self._lock:
            if self._paper == "out" and state != "out":
                self.printout.tear_off()      # the technician tears off the stub
            self._paper = state
            self._lines_left = None

    def run_out_after(self, lines: int) -> None:
        """The roll ends after `lines` more lines of paper (text lines and feeds)."""
        with self._lock:
            self._lines_left = lines

    @property
    def receipts(self) -> list[PrintedReceipt]:
        with self._lock:
            return list(self.printout.receipts)

    @property
    def partial(self) -> PrintedReceipt:
        """Printed since the last cut (a receipt whose cut has not come, or never will)."""
        with self._lock:
            return self.printout.current

    @property
    def unknown(self) -> int:
        with self._lock:
            return self.printout.unknown
