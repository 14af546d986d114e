"""`[speech]`: speech output for blind and low-vision customers (kiosk/speech.py,
docs/speech.md). No table: the defaults (off until a customer presses the start key)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from .config_values import Table, show, text
from .speech import (
    DEFAULT_VOICES,
    RATE_MAX,
    RATE_MIN,
    START_KEYS,
    VOLUME_MAX,
    VOLUME_MIN,
    SpeechSettings,
)
from .speech_clips import PROMPTS_FILE, ClipVoice

__all__ = ["SpeechSettings", "load_speech"]

_VOICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+.-]{0,39}")


def load_speech(t: Table, languages: tuple[str, ...], currency: str = "PHP") -> SpeechSettings:
    base = t.file.parent
    enabled = t.get("enabled_at_start", bool, False)
    fallback = t.get("fallback_language", str, "en")
    rate = t.get("rate", int, SpeechSettings.rate, lo=RATE_MIN, hi=RATE_MAX)
    volume = t.get("volume", int, SpeechSettings.volume, lo=VOLUME_MIN, hi=VOLUME_MAX)
    start_key = t.get("start_key", str, SpeechSettings.start_key, choices=START_KEYS)
    espeak = t.path("espeak", SpeechSettings.espeak)

    raw_player = t.get("player", (str, list), "aplay -q")
    try:
        player = (shlex.split(raw_player) if isinstance(raw_player, str) else raw_player)
    except ValueError as exc:
        raise t.error("player", f"cannot be split into a command: {exc}") from None
    if not player or any(not isinstance(a, str) or not a for a in player):
        raise t.error("player", f"must be a command like \"aplay -q\", got {show(raw_player)}")
    for a in player:
        text(t.fail("player"), a)

    record = t.get("record_dir", str, "")
    record_dir = base / t.path("record_dir", "") if record else None

    known = (*languages, fallback) if fallback not in languages else languages
    voices = dict(DEFAULT_VOICES)
    for lang, voice in t.str_table("voices").items():
        if lang not in known:
            raise t.error(f"voices.{lang}", "not a language of ui.languages "
                                            f"({', '.join(languages)}) nor the fallback")
        if voice and not _VOICE.fullmatch(voice):
            raise t.error(f"voices.{lang}", "must be an espeak-ng voice name like \"en-us\" "
                                            f"(espeak-ng --voices), got {show(voice)}")
        voices[lang] = voice
    voices = {lang: v for lang, v in voices.items() if v}     # "": no voice for it
    if fallback not in voices:
        raise t.error("fallback_language", f"{fallback!r} has no voice in [speech.voices]; "
                                           "the fallback must be a language espeak-ng speaks")

    clip_dirs: dict[str, Path] = {}
    for lang, folder in t.str_table("clip_dirs").items():
        key = f"clip_dirs.{lang}"
        if lang not in languages:
            raise t.error(key, f"not a language of ui.languages ({', '.join(languages)})")
        if lang in voices:
            raise t.error(key, f"{lang!r} has a voice (voices.{lang}); a language is spoken "
                               "by a voice or by recordings, not both")
        path = base / text(t.fail(key), folder, path=True)
        if not (path / PROMPTS_FILE).is_file():
            raise t.error(key, f"no {PROMPTS_FILE} in {show(str(path))}")
        clip_dirs[lang] = path
    t.done()
    for lang, path in clip_dirs.items():
        ClipVoice(path, lang, currency)        # every clip readable, one format (or says why)
    return SpeechSettings(
        enabled_at_start=enabled, voices=voices, rate=rate, volume=volume,
        player=tuple(player), record_dir=record_dir, clip_dirs=clip_dirs,
        fallback_language=fallback, start_key=start_key, espeak=espeak)
