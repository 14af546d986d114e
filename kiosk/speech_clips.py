"""Recorded prompt sets: speech for a language that espeak-ng has no voice for (Filipino).

A set is a folder (e.g. config/voice/fil/) holding WAV clips and a `prompts.toml`:

    [prompts]                    # message (the English msgid) -> a clip, or clips and fields
    "Done! Your top-up was sent" = "done.wav"
    "Still to pay: {amount}" = ["still_to_pay.wav", "{amount}"]

    [numbers]                    # "0".."19", "20".."90", "hundred", "thousand" (+ optional
    "0" = "n0.wav"               # "million" and any exact number, e.g. "100" or "25", that
    "hundred" = "hundred.wav"    # the language says differently from its parts)

    [words]                      # unit words (the currency's English names), and any text
    peso = "piso.wav"            # a field may hold, e.g. "/" for a key name
    centavo = "sentimo.wav"

Every clip is 16-bit mono PCM WAV, all at one sample rate: checked when the set is loaded,
with one line naming the file and what is wrong. A message is played by joining its clips'
samples into one WAV (no gap is added: record each clip with its own short silence).

Fields are filled by the value's kind: an Amount (money in minor units) as number clips and
unit words, Digits one digit at a time, another int as a number, another str as a [words]
clip. ClipVoice.can_say() tells whether a message can be played entirely from clips; when
it cannot, the caller falls back to another voice (kiosk/speech.py), never to silence.
"""

from __future__ import annotations

import io
import re
import string
import wave
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .config_values import ConfigError, escaped, read_toml
from .money import exponent

PROMPTS_FILE = "prompts.toml"
TABLES = ("prompts", "numbers", "words")
SCALE_WORDS = ("hundred", "thousand", "million")
_FIELD = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")

# The unit words a set records for each currency, by their English names:
# (one, many, minor one, minor many). A set may leave out the plural: the singular is used.
CURRENCY_WORDS: dict[str, tuple[str, str, str, str]] = {
    "PHP": ("peso", "pesos", "centavo", "centavos"),
    "CNY": ("yuan", "yuan", "fen", "fen"),
    "THB": ("baht", "baht", "satang", "satang"),
    "IDR": ("rupiah", "rupiah", "sen", "sen"),
    "USD": ("dollar", "dollars", "cent", "cents"),
    "EUR": ("euro", "euros", "cent", "cents"),
    "JPY": ("yen", "yen", "", ""),
}


class Amount(int):
    """A field value that is money, in minor units of the kiosk's currency."""


class Digits(str):
    """A field value said digit by digit (a voucher code). Shown in groups of four."""

    def spaced(self) -> str:
        """'1234567812345678' -> '1 2 3 4, 5 6 7 8, ...': each digit on its own, for a voice."""
        groups = [self[i:i + 4] for i in range(0, len(self), 4)]
        return ", ".join(" ".join(g) for g in groups)


FieldValue = int | str


def fields_of(msgid: str) -> set[str]:
    """The placeholder names of a message: 'Still to pay: {amount}' -> {'amount'}."""
    try:
        return {f for _, f, _, _ in string.Formatter().parse(msgid) if f}
    except ValueError:
        return set()


def unit_words(currency: str) -> tuple[str, str, str, str]:
    c = currency.lower()
    return CURRENCY_WORDS.get(currency, (c, c, "", ""))


@dataclass(frozen=True)
class WavFormat:
    channels: int
    sample_width: int         # bytes per sample
    rate: int                 # samples per second


class ClipVoice:
    """One language's recorded prompt set, loaded into memory (a few hundred KB)."""

    def __init__(self, folder: Path, lang: str, currency: str) -> None:
        self.folder, self.lang, self.currency = folder, lang, currency
        self.file = folder / PROMPTS_FILE
        self.format: WavFormat | None = None
        self._audio: dict[Path, bytes] = {}
        data = read_toml(self.file)
        for name in data:
            if name not in TABLES:
                raise ConfigError(self.file, name, "unknown table (have prompts, numbers, "
                                                   "words)")
        self.prompts: dict[str, tuple[str, ...]] = {}
        self.numbers: dict[str, Path] = {}
        self.words: dict[str, Path] = {}
        for msgid, value in self._table(data, "prompts").items():
            self.prompts[msgid] = self._prompt(msgid, value)
        for key, value in self._table(data, "numbers").items():
            if not ((key.isascii() and key.isdigit() and len(key) <= 12)
                    or key in SCALE_WORDS):
                raise ConfigError(self.file, f"numbers.{key}",
                                  "must be a number (\"0\", \"20\", \"100\") or one of "
                                  + ", ".join(SCALE_WORDS))
            self.numbers[str(int(key)) if key.isdigit() else key] = self._clip(
                f"numbers.{key}", value)
        for key, value in self._table(data, "words").items():
            self.words[key] = self._clip(f"words.{key}", value)

    # ------------------------------------------------------------------ loading
    def _table(self, data: dict[str, object], name: str) -> dict[str, object]:
        t = data.get(name, {})
        if not isinstance(t, dict):
            raise ConfigError(self.file, name, "must be a table")
        return t

    def _prompt(self, msgid: str, value: object) -> tuple[str, ...]:
        key = f"prompts.{msgid!r}"
        parts = [value] if isinstance(value, str) else value
        if not isinstance(parts, list) or not parts or any(
                not isinstance(p, str) for p in parts):
            raise ConfigError(self.file, key, "must be a clip file, or a list of clip files "
                                              "and fields like \"{amount}\"")
        wanted = fields_of(msgid)
        out: list[str] = []
        for p in parts:
            assert isinstance(p, str)
            m = _FIELD.match(p)
            if m:
                if m.group(1) not in wanted:
                    raise ConfigError(self.file, key,
                                      f"{p} is not a field of this message")
                out.append(p)
            else:
                self._clip(key, p)
                out.append(p)
        missing = wanted - {p[1:-1] for p in out if _FIELD.match(p)}
        if missing:
            raise ConfigError(self.file, key, "the clips leave out "
                              + ", ".join("{" + f + "}" for f in sorted(missing)))
        return tuple(out)

    def _clip(self, key: str, name: object) -> Path:
        if not isinstance(name, str) or not name or "\x00" in name:
            raise ConfigError(self.file, key, "must be the name of a WAV file in "
                                              f"{escaped(str(self.folder))}")
        path = self.folder / name
        if path in self._audio:
            return path
        try:
            with wave.open(str(path), "rb") as w:
                fmt = WavFormat(w.getnchannels(), w.getsampwidth(), w.getframerate())
                frames = w.readframes(w.getnframes())
        except FileNotFoundError:
            raise ConfigError(self.file, key, f"{escaped(name)}: no such file") from None
        except (wave.Error, EOFError) as exc:
            raise ConfigError(self.file, key, f"{escaped(name)}: not a PCM WAV file "
                                              f"({exc or 'truncated'})") from None
        except OSError as exc:
            raise ConfigError(self.file, key,
                              f"{escaped(name)}: cannot read: {exc.strerror}") from None
        if fmt.channels != 1 or fmt.sample_width != 2:
            raise ConfigError(self.file, key, f"{escaped(name)}: {fmt.channels} channel(s) "
                              f"of {8 * fmt.sample_width}-bit samples; every clip must be "
                              "16-bit mono")
        if self.format is None:
            self.format = fmt
        elif fmt.rate != self.format.rate:
            raise ConfigError(self.file, key, f"{escaped(name)}: {fmt.rate} Hz, but the "
                              f"set's other clips are {self.format.rate} Hz (one rate for all)")
        if not frames:
            raise ConfigError(self.file, key, f"{escaped(name)}: no audio in it")
        self._audio[path] = frames
        return path

    # ------------------------------------------------------------------ composing
    def number(self, n: int) -> list[Path] | None:
        """The clips that say n (>= 0), or None when the set lacks one of them. A clip for
        the exact number wins; otherwise thousands/hundreds/tens/ones are joined."""
        if n < 0:
            return None
        if str(n) in self.numbers:
            return [self.numbers[str(n)]]
        for size, word in ((1_000_000, "million"), (1000, "thousand"), (100, "hundred")):
            if n >= size:
                head, rest = divmod(n, size)
                exact = str(head * size)
                if exact in self.numbers:
                    first: list[Path] | None = [self.numbers[exact]]
                else:
                    lead = self.number(head)
                    first = None if lead is None or word not in self.numbers else [
                        *lead, self.numbers[word]]
                tail = self.number(rest) if rest else []
                return None if first is None or tail is None else first + tail
        if n >= 20:
            tens = str(n // 10 * 10)
            ones = self.number(n % 10) if n % 10 else []
            if tens not in self.numbers or ones is None:
                return None
            return [self.numbers[tens], *ones]
        return None

    def _word(self, *names: str) -> Path | None:
        for name in names:
            if name and name in self.words:
                return self.words[name]
        return None

    def amount(self, minor: int) -> list[Path] | None:
        """Money: '125 pesos', '1 peso and 50 centavos', '50 centavos'."""
        one, many, sub_one, sub_many = unit_words(self.currency)
        whole, frac = divmod(minor, 10 ** exponent(self.currency))
        out: list[Path] = []
        if whole or not frac:
            n, unit = self.number(whole), self._word(
                one if whole == 1 else many, one)
            if n is None or unit is None:
                return None
            out += [*n, unit]
        if frac:
            n, unit = self.number(frac), self._word(
                sub_one if frac == 1 else sub_many, sub_one)
            if n is None or unit is None:
                return None
            if out and "and" in self.words:
                out.append(self.words["and"])
            out += [*n, unit]
        return out

    def value(self, v: object) -> list[Path] | None:
        if isinstance(v, Amount):
            return self.amount(int(v))
        if isinstance(v, Digits):
            out: list[Path] = []
            for d in v:
                if d in " -":
                    continue
                if not (d.isascii() and d.isdigit()) or d not in self.numbers:
                    return None
                out.append(self.numbers[d])
            return out or None
        if isinstance(v, bool):
            return None
        if isinstance(v, int):
            return self.number(v)
        if isinstance(v, str):
            w = self._word(v)
            return [w] if w is not None else None
        return None

    def clips(self, msgid: str, args: Mapping[str, object] | None = None) -> list[Path] | None:
        """Every clip of the message, in order, or None when it cannot be said from clips."""
        parts = self.prompts.get(msgid)
        if parts is None:
            return None
        out: list[Path] = []
        for p in parts:
            m = _FIELD.match(p)
            if not m:
                out.append(self.folder / p)
                continue
            if args is None or m.group(1) not in args:
                return None
            more = self.value(args[m.group(1)])
            if more is None:
                return None
            out += more
        return out

    def can_say(self, msgid: str, args: Mapping[str, object] | None = None) -> bool:
        """The message has a recording and this set has a clip for every field's value."""
        return self.clips(msgid, args) is not None

    def compose(self, msgid: str, args: Mapping[str, object] | None = None) -> bytes:
        """The message as one WAV file (bytes): the clips' samples joined."""
        paths = self.clips(msgid, args)
        if paths is None:
            raise KeyError(msgid)
        return self.join(paths)

    def join(self, paths: list[Path]) -> bytes:
        assert self.format is not None
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(self.format.channels)
            w.setsampwidth(self.format.sample_width)
            w.setframerate(self.format.rate)
            w.writeframes(b"".join(self._audio[p] for p in paths))
        return buf.getvalue()


def load_sets(clip_dirs: Mapping[str, Path], currency: str) -> dict[str, ClipVoice]:
    """Every configured prompt set, loaded and checked (a ConfigError names what is wrong)."""
    return {lang: ClipVoice(folder, lang, currency) for lang, folder in clip_dirs.items()}


# ------------------------------------------------------------------ for whoever records a set
def spoken_keys() -> list[str]:
    """The messages the kiosk speaks (kiosk/spoken.py) and the engine's notices: the keys a
    complete prompt set records."""
    from .i18n import NOTICES
    from .messages import extract
    found = extract()
    keys = [m for m, places in found.items()
            if any(p.startswith("kiosk/spoken.py:") for p in places)]
    return keys + [n for n in dict.fromkeys(NOTICES.values()) if n not in keys]


def main(argv: list[str] | None = None) -> int:
    """`python -m kiosk.speech_clips keys`: the keys to record, as TOML lines to fill in.
    `python -m kiosk.speech_clips check FOLDER [CURRENCY]`: load a set (every clip checked)
    and list the keys it has no recording for."""
    import sys
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["keys"]:
        for key in spoken_keys():
            fields = sorted(fields_of(key))
            value = "\"\"" if not fields else "[" + ", ".join(
                ["\"\"", *(f"\"{{{f}}}\"" for f in fields)]) + "]"
            print(f"{_toml_key(key)} = {value}")
        return 0
    if args[:1] == ["check"] and len(args) in (2, 3):
        try:
            voice = ClipVoice(Path(args[1]), Path(args[1]).name, args[2] if len(args) == 3
                              else "PHP")
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 1
        missing = [k for k in spoken_keys() if k not in voice.prompts]
        fmt = voice.format
        print(f"{voice.file}: {len(voice.prompts)} prompts, {len(voice.numbers)} number clips,"
              f" {len(voice.words)} words" + (f", {fmt.rate} Hz 16-bit mono" if fmt else ""))
        for key in missing:
            print(f"  no recording (the fallback voice says it): {key}")
        return 0
    print(main.__doc__, file=sys.stderr)
    return 2


def _toml_key(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    raise SystemExit(main())
