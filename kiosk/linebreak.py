"""Line breaking for text on screen, Chinese included (pure: the caller measures).

Chinese has no spaces between words, so its translations mark where a line may break with
U+200B (zero-width space) between words: 请|插入|您的|SIM卡, where | is the mark. A line
then never ends in the middle of a word (卡 of SIM卡 alone on the next line, 号 without
码, 识币器 cut after 识).

Break opportunities:
- spaces (dropped at the end of a line) and U+200B (never shown);
- after CJK punctuation (full-width comma, full stop, colon, ..., closing brackets), and
  before an opening bracket;
- between a CJK character and a Latin word, in a paragraph that has no U+200B: a marked
  paragraph names its word boundaries itself ("SIM卡" is one word there).
Lines are filled greedily. A word is broken only when it alone is wider than the line,
then by character. Kinsoku: no line starts with closing punctuation, none ends with an
opening one.
"""

from __future__ import annotations

from collections.abc import Callable

MARK = "\u200b"
# Full-width punctuation is the point here (RUF001 mistakes it for look-alikes of ASCII).
CLOSING = frozenset("，。、：；！？）」』》…,.:;!?)”’】〕〉〗％")  # noqa: RUF001
OPENING = frozenset("（「『《“‘【〔〈〖")  # noqa: RUF001
CJK_PUNCT = frozenset("，。、：；！？）」』》…（「『《【】〔〕〈〉〖〗")  # noqa: RUF001
_CJK_RANGES = ((0x1100, 0x11FF), (0x2E80, 0x2FFF), (0x3000, 0x303F), (0x3040, 0x30FF),
               (0x3100, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7AF),
               (0xF900, 0xFAFF), (0xFE30, 0xFE4F), (0xFF00, 0xFFEF), (0x20000, 0x3FFFF))

Measure = Callable[[str], float]


def is_cjk(ch: str) -> bool:
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in _CJK_RANGES)


def needs_wrap(text: str) -> bool:
    """True when the text needs this module's wrapping: it has CJK characters or marks."""
    return any(ch == MARK or is_cjk(ch) for ch in text)


def strip_marks(text: str) -> str:
    """The text without its word-boundary marks (for SMS, logs, printers)."""
    return text.replace(MARK, "")


def _ideograph(ch: str) -> bool:
    return is_cjk(ch) and ch not in CJK_PUNCT


def _latin(ch: str) -> bool:
    return not ch.isspace() and ch != MARK and not is_cjk(ch)


def _break_between(prev: str, ch: str, mixed_breaks: bool) -> bool:
    """A line may break between `prev` and `ch` (inside what spaces and marks left whole):
    before an opening bracket, and where CJK meets Latin if `mixed_breaks`."""
    if ch in CJK_PUNCT and ch in OPENING:
        return prev not in OPENING
    if not mixed_breaks:
        return False
    return (_ideograph(prev) and _latin(ch)) or (_latin(prev) and _ideograph(ch))


def segments(paragraph: str) -> list[tuple[str, str]]:
    """The paragraph as (word, gap) pairs: a line may break after any gap; the gap (spaces,
    or "" for a mark or a CJK break) is not shown at the end of a line."""
    mixed_breaks = MARK not in paragraph
    out: list[tuple[str, str]] = []
    word, i, n = "", 0, len(paragraph)
    while i < n:
        ch = paragraph[i]
        if ch == " " or ch == MARK:
            j = i
            while j < n and paragraph[j] in (" ", MARK):
                j += 1
            gap = paragraph[i:j].replace(MARK, "")
            if word or not out:
                out.append((word, gap))
            else:                          # spaces after a CJK break: one gap
                out[-1] = (out[-1][0], out[-1][1] + gap)
            word, i = "", j
            continue
        if word and _break_between(word[-1], ch, mixed_breaks):
            out.append((word, ""))
            word = ""
        word += ch
        if ch in CJK_PUNCT and ch in CLOSING and i + 1 < n and paragraph[i + 1] not in CLOSING:
            out.append((word, ""))
            word = ""
        i += 1
    if word or not out:
        out.append((word, ""))
    return _kinsoku(out)


def _kinsoku(segs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Join the breaks a line may not take: before closing punctuation, after opening."""
    out: list[tuple[str, str]] = []
    for word, gap in segs:
        if out and word and (word[0] in CLOSING or out[-1][0][-1:] in OPENING):
            prev, prev_gap = out.pop()
            out.append((prev + prev_gap + word, gap))
        else:
            out.append((word, gap))
    return out


def _split_word(word: str, width: float, measure: Measure) -> list[str]:
    """A word wider than the line, by character: full lines, then the rest."""
    parts: list[str] = []
    rest = word
    while rest and measure(rest) > width:
        k = 1
        while k < len(rest) and measure(rest[:k + 1]) <= width:
            k += 1
        # Kinsoku: push a character along rather than start a line with closing punctuation
        # or end one with an opening one.
        while k > 1 and (rest[k] if k < len(rest) else "") in CLOSING:
            k -= 1
        while k > 1 and rest[k - 1] in OPENING:
            k -= 1
        parts.append(rest[:k])
        rest = rest[k:]
    parts.append(rest)
    return parts


def _wrap_paragraph(paragraph: str, width: float, measure: Measure) -> list[str]:
    lines: list[str] = []
    line, gap = "", ""
    for word, next_gap in segments(paragraph):
        candidate = line + gap + word
        if measure(candidate.rstrip(" ")) > width:
            if line.strip():
                lines.append(line)
            *full, line = _split_word(word, width, measure)
            lines += full
        else:
            line = candidate
        gap = next_gap
    lines.append(line)
    return [ln.rstrip(" ") for ln in lines]


def wrap(text: str, width: float, measure: Measure) -> list[str]:
    """The display lines of `text` at most `width` wide (as `measure` says), "\\n" kept as
    line ends. A single word wider than `width` is the only thing that may overflow a
    break: it is broken by character."""
    out: list[str] = []
    for paragraph in text.split("\n"):
        out += _wrap_paragraph(paragraph, width, measure)
    return out
