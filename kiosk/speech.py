"""Speech output for blind and low-vision customers (ADA 2010 §707, EN 301 549 §5.1.3 and
§8.5): the kiosk says what the screen shows and what changes, in the customer's language.

    speech = Speech(settings.speech, settings.currency)
    speech.start()                          # the customer pressed KEY_START
    speech.say(text, "en")                  # interrupts what is being said
    speech.key("KP_Add")                    # the speech keys: start/stop, repeat, volume
    speech.end()                            # the visit is over: quiet, volume back

The UI thread runs an asyncio loop, so nothing here blocks: espeak-ng and the player run as
child processes (each in its own process group, killed as a group when interrupted), and
say() returns at once. Audio: `espeak-ng --stdout | <player>` (default `aplay -q`), or with
`record_dir` set, `espeak-ng -w <file>` and then `<player> <file>`, so that every utterance
is also kept as a WAV file (for tests and diagnostics).

A language without an espeak-ng voice (Filipino) is spoken from a recorded prompt set
(kiosk/speech_clips.py) when the message has a recording, and otherwise by the fallback
language's voice (English) saying the English source text: never silence, and never a
voice reading words of a language it does not know. That needs the message's source, so
in such a language say() takes a Line (kiosk/spoken.py makes them), not a plain str.

If espeak-ng or the player is missing or fails, one warning is logged (no traceback) and
the kiosk carries on silently; `said` still records what would have been said.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .money import SYMBOLS, MoneyError, exponent, parse_minor
from .speech_clips import Amount, ClipVoice, Digits, load_sets, unit_words

log = logging.getLogger(__name__)

__all__ = ["KEY_CODE", "KEY_REPEAT", "KEY_START", "KEY_VOLUME_DOWN", "KEY_VOLUME_UP",
           "Amount", "Digits", "Line", "Speech", "SpeechSettings", "speakable"]

# ------------------------------------------------------------------ keys
# X11 key names of the numeric keypad's free keys (digits, arrows, Enter, Backspace/Clear
# and Escape/Cancel belong to the keypad navigation). docs/speech.md lists them.
KEY_START = "KP_Multiply"      # "*": speech on; pressed again: speech off (configurable)
KEY_REPEAT = "KP_Decimal"      # ".": say the last thing again
KEY_VOLUME_UP = "KP_Add"       # "+"
KEY_VOLUME_DOWN = "KP_Subtract"  # "-"
KEY_CODE = "KP_Divide"         # "/": read the voucher code aloud (only when asked)

# What else a key may be called: Kivy's key name (Window on_key_down, keycode_to_string)
# and the character it types.
KEY_ALIASES: dict[str, tuple[str, ...]] = {
    "KP_Multiply": ("numpadmul", "*"),
    "KP_Decimal": ("numpaddecimal", "."),
    "KP_Add": ("numpadadd", "+"),
    "KP_Subtract": ("numpadsubstract", "-"),
    "KP_Divide": ("numpaddivide", "/"),
    **{f"F{i}": (f"f{i}",) for i in range(1, 13)},
}
START_KEYS = ("KP_Multiply", *(f"F{i}" for i in range(1, 13)))   # choices for start_key
KEY_CHARS = {k: v[-1] for k, v in KEY_ALIASES.items() if len(v) == 2}   # "KP_Divide" -> "/"

VOLUME_MIN, VOLUME_MAX, VOLUME_STEP = 0, 200, 20      # espeak-ng -a
RATE_MIN, RATE_MAX = 80, 450                          # espeak-ng -s, words per minute
SAID_MAX = 200

DEFAULT_VOICES = {"en": "en-us", "zh_CN": "cmn-latn-pinyin"}
# zh_CN: "cmn" of espeak-ng 1.51 (Debian 12) says each syllable's tone digit in English
# ("hao three"); "cmn-latn-pinyin" reads the characters right (docs/speech.md).


@dataclass(frozen=True)
class SpeechSettings:
    """[speech] of kiosk.toml (kiosk/config_speech.py reads and checks it)."""
    enabled_at_start: bool = False
    voices: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_VOICES))
    rate: int = 150                       # words per minute (espeak-ng's own is 175)
    volume: int = 100                     # 0..200, the start of each visit
    player: tuple[str, ...] = ("aplay", "-q")
    record_dir: Path | None = None
    clip_dirs: dict[str, Path] = field(default_factory=dict)
    fallback_language: str = "en"
    start_key: str = KEY_START
    espeak: str = "espeak-ng"


class Line(str):
    """Something to say, already in the customer's language, that remembers its source:
    the English msgid, the field values (Amount, Digits, int, str) and the English text.
    A prompt set plays it from msgid and values; the fallback voice says `english`.
    A line with a Digits value (a voucher code) is secret: it is spoken, but neither kept
    in `said` (the msgid is, instead) nor written to `record_dir`."""

    msgid: str
    args: dict[str, Any]
    english: str

    def __new__(cls, text: str, msgid: str, args: Mapping[str, Any] | None = None,
                english: str | None = None) -> Line:
        self = super().__new__(cls, text)
        self.msgid = msgid
        self.args = dict(args or {})
        self.english = text if english is None else english
        return self

    @property
    def secret(self) -> bool:
        return any(isinstance(v, Digits) for v in self.args.values())


# ------------------------------------------------------------------ text for the voice
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u2060\ufeff]")
_PAUSES = {"·": ", ", "•": " ", "…": "...", "\u2014": ", ", "\u2013": ", "}   # em, en dash


def _symbol(ch: str) -> bool:
    """▶ ◀ ✕ ✓ ● ○ and their kind: drawn, not read (arrows too; + - = < > are kept)."""
    cat = unicodedata.category(ch)
    return cat == "So" or (cat == "Sm" and 0x2190 <= ord(ch) <= 0x21FF)


def _money_words(minor: int, lang: str, currency: str) -> str:
    exp = exponent(currency)
    whole, frac = divmod(minor, 10**exp)
    if lang.startswith("zh"):
        out = f"{whole}元" if whole or not frac else ""
        if exp == 2 and frac:
            jiao, fen = divmod(frac, 10)
            out += (f"{jiao}角" if jiao else ("零" if whole else "")) + (
                f"{fen}分" if fen else "")
        elif frac:
            out += f"{frac}分"
        return out
    if lang.startswith("en"):
        one, many, sub_one, sub_many = unit_words(currency)
        parts = []
        if whole or not frac:
            parts.append(f"{whole} {one if whole == 1 else many}")
        if frac:
            parts.append(f"{frac} {sub_one if frac == 1 else sub_many}".strip())
        return " and ".join(parts)
    # A voice of another language says the number; the currency is read as its code.
    num = str(whole) if not frac else f"{whole}.{frac:0{exp}d}"
    return f"{num} {currency}"


_ENDS = ".!?:;,…" + "\u3002\uff01\uff1f\uff1a\uff1b\uff0c"   # and the full-width ones


def _sentence(text: str, lang: str) -> str:
    """A line that ends like a sentence, so that the next one is not run into it."""
    if not text or text[-1] in _ENDS:
        return text
    return text + ("\u3002" if lang.startswith("zh") else ".")


def _money_pattern(currency: str) -> re.Pattern[str]:
    marks = [re.escape(currency) + r"\s?"]
    if currency in SYMBOLS:
        marks.insert(0, re.escape(SYMBOLS[currency]) + r"\s?")
    return re.compile("(?:" + "|".join(marks) + r")(\d[\d,]*(?:\.\d+)?)")


def speakable(text: str, lang: str, currency: str) -> str:
    """The text as the voice should get it: no invisible characters, no drawn symbols
    (▶ ◀ ✕ ✓ ●), money in words the voice reads ("₱50.00" -> "50 pesos" in English,
    "50元" in Chinese, centavos only when there are any) and "20 s." as "20 seconds"."""
    text = _INVISIBLE.sub("", text)

    def money(m: re.Match[str]) -> str:
        try:
            minor = parse_minor(m.group(1).replace(",", ""), currency)
        except MoneyError:
            return m.group(0)
        return _money_words(minor, lang, currency)

    text = _money_pattern(currency).sub(money, text)
    if lang.startswith("en"):
        text = re.sub(r"\b(\d+) ?s\b(\.?)", lambda m: m.group(1) + (
            " second" if m.group(1) == "1" else " seconds") + m.group(2), text)
    text = "".join(_PAUSES.get(ch, " " if _symbol(ch) else ch) for ch in text)
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"\s+([,.!?;:])", r"\1", text)


# ------------------------------------------------------------------ the voice
@dataclass(frozen=True)
class _Job:
    lang: str                     # the language heard
    text: str                     # what is heard
    voice: str = ""               # espeak-ng voice, or "" for a recorded prompt set
    wav: bytes = b""              # the composed clips
    secret: bool = False          # neither in `said` nor in record_dir
    note: str = ""                # for `said`: the text, or a secret line's msgid

    def __post_init__(self) -> None:
        if not self.note:
            object.__setattr__(self, "note", self.text)

    def then(self, other: _Job) -> _Job:
        """This and the next line for the same voice, as one run of espeak-ng."""
        return _Job(self.lang, _sentence(self.text, self.lang) + " " + other.text, self.voice,
                    secret=self.secret or other.secret,
                    note=_sentence(self.note, self.lang) + " " + other.note)


class Speech:
    def __init__(self, settings: SpeechSettings | None = None, currency: str = "PHP", *,
                 clips: Mapping[str, ClipVoice] | None = None) -> None:
        self.settings = settings or SpeechSettings()
        self.currency = currency
        self.clips: dict[str, ClipVoice] = dict(
            clips if clips is not None else load_sets(self.settings.clip_dirs, currency))
        self.enabled = self.settings.enabled_at_start
        self.volume = self.settings.volume
        self.said: list[tuple[str, str]] = []
        self.last_recording: Path | None = None
        self._last: tuple[list[str], str] | None = None
        self._gen = 0                      # bumped by every say()/stop(): older work ends
        self._task: asyncio.Task[None] | None = None
        self._procs: list[asyncio.subprocess.Process] = []
        self._warned: set[str] = set()
        self._seq = 0
        if self.settings.record_dir is not None:
            self.settings.record_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ session
    def start(self) -> None:
        """Speech mode on (the customer pressed the start key)."""
        self.enabled = True

    def end(self) -> None:
        """The speech session is over (the visit ended, or the customer turned it off):
        stop talking, speech mode off, the volume back to the configured one."""
        self.stop()
        self.enabled = False
        self.volume = self.settings.volume
        self._last = None

    @property
    def speaking(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def running(self) -> tuple[int, ...]:
        """Process ids of the espeak-ng/player processes of the current utterance."""
        return tuple(p.pid for p in self._procs if p.returncode is None)

    # ------------------------------------------------------------------ keys
    def action(self, key: str) -> str | None:
        """Which speech key this is ("start", "repeat", "volume_up", "volume_down", "code"),
        by X11 name, Kivy name or character; None for any other key."""
        start = self.settings.start_key
        names = {start: "start", KEY_REPEAT: "repeat", KEY_VOLUME_UP: "volume_up",
                 KEY_VOLUME_DOWN: "volume_down", KEY_CODE: "code"}
        for name, act in names.items():
            if key == name or key in KEY_ALIASES.get(name, ()):
                return act
        return None

    def key(self, key: str) -> str | None:
        """Handle a speech key; returns what it did ("start", "end", "repeat", "volume_up",
        "volume_down", or "code": the UI then says spoken.voucher_code()), or None when the
        key is not a speech key (or speech mode is off and it is not the start key): the
        UI handles it as usual. After "start" the UI says where the customer is."""
        act = self.action(key)
        if act is None or (not self.enabled and act != "start"):
            return None
        if act == "start":
            if self.enabled:
                self.end()
                return "end"
            self.start()
        elif act == "repeat":
            self.repeat()
        elif act in ("volume_up", "volume_down"):
            (self.volume_up if act == "volume_up" else self.volume_down)()
            self.repeat()                 # heard at the new volume
        return act

    # ------------------------------------------------------------------ volume
    def volume_up(self) -> int:
        self.volume = min(VOLUME_MAX, self.volume + VOLUME_STEP)
        return self.volume

    def volume_down(self) -> int:
        self.volume = max(VOLUME_MIN, self.volume - VOLUME_STEP)
        return self.volume

    # ------------------------------------------------------------------ speaking
    def say(self, text: str | Sequence[str], lang: str) -> None:
        """Say `text` (in language `lang`; a list of lines is said one after the other) now,
        cutting off whatever is being said. Returns at once. Nothing happens when speech
        mode is off or there is nothing to say."""
        lines = [text] if isinstance(text, str) else [t for t in text if t]
        if not self.enabled or not any(lines):
            return
        self._last = (lines, lang)
        jobs = self._jobs(lines, lang)
        self.stop()
        if not jobs:
            return
        self.said += [(j.lang, j.note) for j in jobs]
        del self.said[:-SAID_MAX]
        gen, prev = self._gen, self._task
        self._task = asyncio.get_running_loop().create_task(self._run(gen, prev, jobs))

    def repeat(self) -> None:
        """Say the last text again."""
        if self._last is not None:
            self.say(*self._last)

    def stop(self) -> None:
        """Silence: kill what is playing (its process groups)."""
        self._gen += 1
        for proc in self._procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)

    async def idle(self) -> None:
        """Wait until nothing plays."""
        while self._task is not None and not self._task.done():
            await asyncio.wait([self._task])

    async def close(self) -> None:
        self.stop()
        await self.idle()

    # ------------------------------------------------------------------ internals
    def _jobs(self, lines: list[str], lang: str) -> list[_Job]:
        """What to play for these lines: consecutive lines for the same voice are one
        espeak-ng run (fewer gaps), each line from clips is one WAV."""
        jobs: list[_Job] = []
        for text in lines:
            job = self._job(text, lang)
            if job is None:
                continue
            if jobs and job.voice and jobs[-1].voice == job.voice:
                jobs[-1] = jobs[-1].then(job)
            else:
                jobs.append(job)
        return jobs

    def _job(self, text: str, lang: str) -> _Job | None:
        s = self.settings
        secret = isinstance(text, Line) and text.secret
        note = text.msgid if isinstance(text, Line) and secret else ""
        voice = s.voices.get(lang)
        if voice:
            return _Job(lang, speakable(text, lang, self.currency), voice=voice,
                        secret=secret, note=note)
        clips = self.clips.get(lang)
        if isinstance(text, Line):
            if clips is not None and clips.can_say(text.msgid, text.args):
                return _Job(lang, str(text), wav=clips.compose(text.msgid, text.args),
                            secret=secret, note=note)
            fb = s.fallback_language
            if s.voices.get(fb):
                return _Job(fb, speakable(text.english, fb, self.currency), voice=s.voices[fb],
                            secret=secret, note=note)
        if clips is not None and clips.can_say(text):
            return _Job(lang, text, wav=clips.compose(text))
        # A plain text in a language no voice knows: whose English is it? Not guessed.
        self._warn(f"plain:{lang}", "speech: no voice for %r and no recording or English "
                   "source for this text (say() needs a Line there): not spoken", lang)
        return None

    def _warn(self, key: str, msg: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(msg, *args)

    def _record_path(self, lang: str) -> Path | None:
        if self.settings.record_dir is None:
            return None
        self._seq += 1
        path = self.settings.record_dir / f"{os.getpid()}-{self._seq:05d}-{lang}.wav"
        self.last_recording = path
        return path

    async def _run(self, gen: int, prev: asyncio.Task[None] | None, jobs: list[_Job]) -> None:
        if prev is not None and not prev.done():
            await asyncio.wait([prev])    # killed already: let it reap its processes
        for job in jobs:
            if gen != self._gen:
                return
            self._procs = []
            try:
                if job.wav:
                    await self._play_wav(gen, job)
                else:
                    await self._espeak(gen, job)
            except Exception as exc:  # noqa: BLE001 - speech must never take the kiosk down
                self._warn(f"error:{type(exc).__name__}", "speech: %s: %s",
                           type(exc).__name__, exc)

    async def _spawn(self, gen: int, argv: list[str], **kw: Any
                     ) -> asyncio.subprocess.Process | None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, process_group=0, stdout=kw.pop("stdout", asyncio.subprocess.DEVNULL),
                stderr=asyncio.subprocess.PIPE, **kw)
        except OSError as exc:
            self._warn(f"spawn:{argv[0]}", "speech: cannot run %s (%s); speech is silent",
                       argv[0], exc.strerror or exc)
            return None
        self._procs.append(proc)
        if gen != self._gen:              # interrupted while it started
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        return proc

    def _check(self, gen: int, proc: asyncio.subprocess.Process, err: bytes | None,
               what: str) -> bool:
        if proc.returncode == 0 or gen != self._gen:
            return proc.returncode == 0
        lines = (err or b"").decode("utf-8", "replace").strip().splitlines()
        detail = lines[-1][:200] if lines else ""
        self._warn(f"exit:{what}", "speech: %s failed (exit %s)%s", what, proc.returncode,
                   f": {detail}" if detail else "")
        return False

    def _espeak_argv(self, voice: str) -> list[str]:
        return [self.settings.espeak, "-v", voice, "-s", str(self.settings.rate),
                "-a", str(self.volume), "--stdin"]

    async def _espeak(self, gen: int, job: _Job) -> None:
        player = list(self.settings.player)
        text = job.text.encode("utf-8")
        path = None if job.secret else self._record_path(job.lang)
        if path is not None:
            tts = await self._spawn(gen, [*self._espeak_argv(job.voice), "-w", str(path)],
                                    stdin=asyncio.subprocess.PIPE)
            if tts is None:
                return
            _, err = await tts.communicate(text)
            if not self._check(gen, tts, err, self.settings.espeak) or gen != self._gen:
                return
            out = await self._spawn(gen, [*player, str(path)])
            if out is not None:
                _, err = await out.communicate()
                self._check(gen, out, err, " ".join(player))
            return
        r, w = os.pipe()
        try:
            tts = await self._spawn(gen, [*self._espeak_argv(job.voice), "--stdout"],
                                    stdin=asyncio.subprocess.PIPE, stdout=w)
            out = await self._spawn(gen, player, stdin=r) if tts is not None else None
        finally:
            os.close(r)
            os.close(w)
        if tts is None:
            return
        if out is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(tts.pid, signal.SIGKILL)
            await tts.wait()
            return
        (_, tts_err), (_, out_err) = await asyncio.gather(tts.communicate(text),
                                                          out.communicate())
        if self._check(gen, out, out_err, " ".join(player)):
            self._check(gen, tts, tts_err, self.settings.espeak)

    async def _play_wav(self, gen: int, job: _Job) -> None:
        path = None if job.secret else self._record_path(job.lang)
        if path is not None:
            await asyncio.to_thread(path.write_bytes, job.wav)
        if gen != self._gen:
            return
        player = list(self.settings.player)
        out = await self._spawn(gen, player, stdin=asyncio.subprocess.PIPE)
        if out is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                _, err = await out.communicate(job.wav)
                self._check(gen, out, err, " ".join(player))
            await out.wait()

