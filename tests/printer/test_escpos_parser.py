"""The ESC/POS parser and the paper model against the bytes python-escpos really sends.

Every vector is built with `escpos.printer.Dummy` (the library the driver uses), fed whole,
in halves and byte by byte (a serial port delivers fragments), and must give the same
events. Status bytes are checked against python-escpos's own reading of them.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from escpos import constants as C
from escpos.escpos import Escpos
from escpos.printer import Dummy
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from drivers.printer import escpos_parser as p
from drivers.printer.escpos import layout, render
from drivers.printer.escpos_sim import Printout


def merged(events: list[p.Event]) -> list[p.Event]:
    """Adjacent Text events joined: fragments of one run of text are the same text."""
    out: list[p.Event] = []
    for e in events:
        if isinstance(e, p.Text) and out and isinstance(out[-1], p.Text):
            out[-1] = p.Text(out[-1].data + e.data)
        else:
            out.append(e)
    return out


def parse(data: bytes, chunks: list[int] | None = None) -> list[p.Event]:
    parser = p.EscposParser()
    events: list[p.Event] = []
    at = 0
    for size in chunks or [len(data)]:
        events += parser.feed(data[at:at + size])
        at += size
    events += parser.feed(data[at:])
    assert parser.pending == 0, "a complete stream leaves nothing pending"
    return merged(events)


def every_split(data: bytes) -> list[p.Event]:
    """Parse whole, in halves and byte by byte; all three must agree."""
    whole = parse(data)
    half = len(data) // 2
    assert parse(data, [half]) == whole
    assert parse(data, [1] * len(data)) == whole
    return whole


def dummy(build: Callable[[Dummy], None]) -> bytes:
    d = Dummy()
    build(d)
    return d.output


def printout(data: bytes, width: int = 42) -> Printout:
    paper = Printout(width)
    for e in p.EscposParser().feed(data):
        paper.apply(e)
    return paper


# ------------------------------------------------------------------------------ vectors

def test_text_and_styles_from_set():
    data = dummy(lambda d: (d.hw("INIT"), d.set(align="center", bold=True, double_height=True),
                            d.textln("PREPAID TOP-UP"), d.set_with_default(), d.textln("Plain")))
    events = every_split(data)
    assert events[0] == p.Init()
    assert p.Text(b"PREPAID TOP-UP") in events and p.Text(b"Plain") in events
    assert p.Setting("align", 1) in events and p.Setting("bold", 1) in events
    assert p.Setting("mode", 0x10) in events            # ESC ! 16: double height
    assert events.count(p.LineFeed()) == 2
    paper = printout(data)
    assert paper.current.lines == ["PREPAID TOP-UP", "Plain"]
    head, body = paper.current.styles
    assert (head.align, head.bold, head.height) == ("center", True, 2)
    assert (body.align, body.bold, body.height) == ("left", False, 1)


def test_size_underline_invert_spacing_and_barcode():
    data = dummy(lambda d: (d.line_spacing(30), d.line_spacing(),
                            d.set(underline=1, invert=True, custom_size=True, width=2, height=3),
                            d.text("x"), d.barcode("CODE39TEST", "CODE39"), d.textln("after")))
    events = every_split(data)
    assert p.Setting("line_spacing", 30) in events and p.Setting("line_spacing", -1) in events
    assert p.Setting("size", 0x12) in events and p.Setting("underline", 1) in events
    assert p.Setting("invert", 1) in events
    assert p.Skipped("GS k barcode") in events          # its data never printed as text
    paper = printout(data)
    assert paper.current.lines == ["xafter"]
    assert paper.current.styles[0].width == 2 and paper.current.styles[0].height == 3
    assert paper.unknown == 0


def test_native_qr_is_extracted_with_its_settings():
    data = dummy(lambda d: d.qr("TOPUP:K0001-000042", ec=C.QR_ECLEVEL_M, size=6, native=True))
    events = every_split(data)
    assert events == [p.Setting("qr_model", 50), p.Setting("qr_size", 6), p.Setting("qr_ec", 49),
                      p.QrStore(b"TOPUP:K0001-000042"), p.QrPrint()]
    sym = printout(data).current.symbols[0]
    assert (sym.data, sym.size, sym.ec, sym.model) == ("TOPUP:K0001-000042", 6, "M", 2)


def test_long_qr_payload_uses_the_high_length_byte():
    payload = "https://example.invalid/topup?ref=" + "K0001-000042-" * 30
    data = dummy(lambda d: d.qr(payload, native=True))
    assert len(payload) > 255
    assert p.QrStore(payload.encode()) in every_split(data)
    assert printout(data).current.qr == [payload]


def test_other_2d_codes_stream_past():
    pdf417 = bytes((0x1D, 0x28, 0x6B, 5, 0, 48, 80, 48)) + b"ab"   # cn 48: PDF417 store
    events = every_split(pdf417 + b"ok\n")
    assert events == [p.Skipped("GS ( k cn 48 fn 80"), p.Text(b"ok"), p.LineFeed()]


def test_raster_image_payload_is_skipped_by_its_header():
    rng = random.Random(5)
    img = Image.new("1", (64, 40))
    img.putdata([rng.choice((0, 255)) for _ in range(64 * 40)])
    img_bytes = dummy(lambda d: d.image(img))
    # Random dots contain LF, ESC, GS V, DLE EOT...: none of them may be taken as commands.
    assert any(b in img_bytes[8:] for b in (0x0A, 0x1B, 0x1D, 0x10))
    data = dummy(lambda d: d.textln("before")) + img_bytes + dummy(lambda d: d.textln("after"))
    events = every_split(data)
    raster = [e for e in events if isinstance(e, p.Raster)]
    assert raster == [p.Raster(0, 8, 40)]
    assert [e for e in events if isinstance(e, p.Text)] == [
        p.Text(b"before"), p.Text(b"after")]
    assert not any(isinstance(e, (p.Cut, p.StatusRequest, p.Unknown)) for e in events)
    paper = printout(data)
    assert paper.current.lines == ["before", "after"] and paper.current.images == [(64, 40)]


def test_graphics_and_column_images_are_skipped_whole():
    img = Image.new("1", (20, 24), 0)
    data = dummy(lambda d: (d.image(img, impl="graphics"), d.image(img, impl="bitImageColumn"),
                            d.textln("end")))
    events = every_split(data)
    assert p.Skipped("GS ( L") in events and p.Skipped("ESC * column image") in events
    assert printout(data).current.lines[-1] == "end"
    assert printout(data).unknown == 0


@pytest.mark.parametrize("build,partial,feed", [
    (lambda d: d.cut(), False, 0),
    (lambda d: d.cut(mode="PART"), True, 0),
    (lambda d: d.cut(feed=False), True, 0),          # GS V 66 0
])
def test_cuts(build, partial, feed):
    events = every_split(dummy(build))
    assert events[-1] == p.Cut(partial, feed)


def test_obsolete_one_byte_cuts():
    assert every_split(b"a\n\x1bi" + b"b\n\x1bm") == [
        p.Text(b"a"), p.LineFeed(), p.Cut(True), p.Text(b"b"), p.LineFeed(), p.Cut(True)]
    assert [r.lines for r in printout(b"a\n\x1bib\n\x1bm").receipts] == [["a"], ["b"]]


def test_cut_ends_a_receipt_and_feed_lines_are_not_text():
    data = render(["HEAD", "one", "two"], "Q", 42)
    paper = printout(data)
    (r,) = paper.receipts
    assert r.cut and r.lines == ["HEAD", "one", "two", ""] and r.qr == ["Q"]
    assert r.feed_lines == 6 and paper.current.empty


def test_code_pages_follow_esc_t():
    text = "Café €5 ünd Ωmega"
    data = dummy(lambda d: d.textln(text))
    assert b"\x1bt" in data.replace(b"\x1bt\x00", b"", 1)   # it switched page mid-line
    assert printout(data).current.lines == [text]


def test_real_time_status_request_between_commands():
    events = every_split(b"ab" + C.RT_STATUS_ONLINE + b"cd" + C.RT_STATUS_PAPER + b"\n")
    assert events == [p.Text(b"ab"), p.StatusRequest(1), p.Text(b"cd"), p.StatusRequest(4),
                      p.LineFeed()]
    assert p.status_request(1) == C.RT_STATUS_ONLINE and p.status_request(4) == C.RT_STATUS_PAPER


def test_unknown_commands_are_counted_and_the_text_after_them_survives():
    data = b"\x1bZ" + b"\x1d\xee" + b"\x1c\xee" + b"\x10\x41" + b"ok\r\n" + b"\x00\x0c"
    events = every_split(data)
    assert events == [p.Unknown(b"\x1bZ"), p.Unknown(b"\x1d\xee"), p.Unknown(b"\x1c\xee"),
                      p.Unknown(b"\x10"), p.Text(b"Aok"), p.LineFeed()]
    paper = printout(data)
    assert paper.unknown == 4 and paper.current.lines == ["Aok"]


def test_commands_that_want_an_answer_are_consumed_not_answered():
    data = b"\x1dr\x01" + b"\x1dI\x01" + b"\x1bv" + b"\x10\x04\x07\x01" + b"\x10\x05\x02" + b"x\n"
    events = every_split(data)
    assert not any(isinstance(e, (p.StatusRequest, p.Unknown)) for e in events)
    assert events[-2:] == [p.Text(b"x"), p.LineFeed()]


def test_tabs_user_characters_and_length_prefixed_blocks():
    user_chars = b"\x1b&\x03\x41\x42" + b"\x02" + b"\x0a" * 6 + b"\x01" + b"\x1b" * 3
    data = (b"\x1bD\x08\x10\x00" + user_chars + b"\x1b(A\x04\x00\x00\x01\x02\x03"
            + b"\x1d8L\x02\x00\x00\x00\x0a\x0a" + b"a\tb\n")
    events = every_split(data)
    assert [e for e in events if isinstance(e, p.Skipped)] == [
        p.Skipped("ESC D tabs"), p.Skipped("ESC & user characters"), p.Skipped("ESC ( A"),
        p.Skipped("GS 8 L")]
    assert printout(data).current.lines == ["a       b"]


def test_a_line_longer_than_the_paper_is_broken_by_the_printer():
    paper = printout(b"x" * 50 + b"\n", width=42)
    assert paper.current.lines == ["x" * 42, "x" * 8] and paper.hard_wraps == 1
    paper = printout(b"\x1d!\x10" + b"y" * 30 + b"\n", width=42)   # double width: 21 a line
    assert paper.current.lines == ["y" * 21, "y" * 9]


def test_init_clears_the_unprinted_line_buffer():
    assert printout(b"lost\x1b@kept\n").current.lines == ["kept"]


# ------------------------------------------------------------------------------ status

class _Answers(Escpos):
    """python-escpos reading a status byte we hand it: its interpretation is the reference."""

    def __init__(self, byte: int) -> None:
        super().__init__()
        self.byte = byte

    def _raw(self, msg: bytes) -> None:
        pass

    def _read(self) -> bytes:
        return bytes((self.byte,))


@pytest.mark.parametrize("paper,escpos_says", [("ok", 2), ("near_end", 1), ("out", 0)])
def test_paper_status_bytes_read_as_python_escpos_reads_them(paper, escpos_says):
    byte = p.status_answer(4, paper=paper, cover_open=False)
    assert _Answers(byte).paper_status() == escpos_says
    assert p.is_status_byte(byte)


def test_status_bytes():
    assert [p.status_answer(n, paper="ok", cover_open=False) for n in (1, 2, 3, 4)] == [0x12] * 4
    assert p.status_answer(4, paper="near_end", cover_open=False) == 0x1E
    assert p.status_answer(4, paper="out", cover_open=False) == 0x7E
    assert p.status_answer(2, paper="out", cover_open=False) == 0x32
    assert p.status_answer(2, paper="ok", cover_open=True) == 0x16
    assert p.status_answer(1, paper="ok", cover_open=True) == 0x1A
    assert _Answers(p.status_answer(1, paper="ok", cover_open=False)).is_online()
    assert not _Answers(p.status_answer(1, paper="out", cover_open=False)).is_online()
    assert not p.is_status_byte(0x00) and not p.is_status_byte(0xFF)


@pytest.mark.parametrize("paper,cover,problem", [
    ("ok", False, ""), ("near_end", False, ""), ("out", False, "paper out"),
    ("ok", True, "cover open"), ("out", True, "cover open")])
def test_status_decoding_round_trip(paper, cover, problem):
    b1, b2, b4 = (p.status_answer(n, paper=paper, cover_open=cover) for n in (1, 2, 4))
    st = p.PrinterStatus.decode(b1, b2, b4)
    assert (st.paper, st.cover_open, st.problem) == (paper, cover, problem)
    assert st.offline == (paper == "out" or cover)


def test_layout_wraps_on_words_and_neutralises_control_characters():
    assert layout(["a" * 10 + " " + "b" * 5], 12) == ["a" * 10, "b" * 5]
    assert layout(["z" * 30], 12) == ["z" * 12, "z" * 12, "z" * 6]
    assert layout(["", "x\x1bd\x05y"], 12) == ["", "x d y"]
    data = render(["H", "x\x1bd\x05y\x1dV\x00"], None, 42)
    assert printout(data).receipts[0].lines == ["H", "x d y V "]


# ------------------------------------------------------------------------------ fuzz

@settings(max_examples=300, deadline=500)
@given(st.binary(max_size=600), st.lists(st.integers(1, 64), max_size=20))
def test_fuzz_never_raises_and_splitting_changes_nothing(data, cuts):
    whole = p.EscposParser()
    events = merged(whole.feed(data))
    split = p.EscposParser()
    got: list[p.Event] = []
    at = 0
    for size in cuts:
        got += split.feed(data[at:at + size])
        at += size
    got += split.feed(data[at:])
    assert merged(got) == events
    assert whole.pending == split.pending
    paper = Printout(42)
    for e in events:
        paper.apply(e)


@settings(max_examples=200, deadline=500)
@given(st.lists(st.sampled_from([b"\x1b", b"\x1d", b"\x1c", b"\x10", b"(", b"k", b"v0", b"V",
                                 b"\x04", b"\x00", b"\xff", b"1P0", b"\n", b"A", b"*", b"8L",
                                 b"&", b"D", b"\x03\x00"]), max_size=80))
def test_fuzz_with_command_fragments(parts):
    data = b"".join(parts)
    events = p.EscposParser().feed(data)
    paper = Printout(42)
    for e in events:
        paper.apply(e)
    byte_by_byte = p.EscposParser()
    assert merged([e for b in data for e in byte_by_byte.feed(bytes((b,)))]) == merged(events)
