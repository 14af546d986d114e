"""Speech output (kiosk/speech.py, kiosk/speech_clips.py, kiosk/config_speech.py) with the
real espeak-ng: utterances recorded as WAV files, interruption by process group, volume,
recorded prompt sets and the fallback to the English voice."""

from __future__ import annotations

import array
import asyncio
import logging
import os
import shutil
import subprocess
import sys
import time
import tomllib
import wave
from collections.abc import Callable
from pathlib import Path

import pytest

from kiosk import speech_clips
from kiosk.config_speech import load_speech
from kiosk.config_values import ConfigError, Table
from kiosk.i18n import Translator
from kiosk.speech import (
    KEY_START,
    VOLUME_MAX,
    VOLUME_MIN,
    Line,
    Speech,
    SpeechSettings,
    speakable,
)
from kiosk.speech_clips import Amount, ClipVoice, Digits
from kiosk.spoken import line


def test_espeak_ng_is_installed() -> None:
    """`make setup` installs it (Debian's espeak-ng): the speech tests need the real one."""
    assert shutil.which("espeak-ng"), "espeak-ng is missing: run `make setup`"

SILENT = ("aplay", "-q", "-D", "null")          # plays nothing, on any machine
RATE = 22050                                   # espeak-ng's own sample rate
# A stand-in for a slow sound card: takes the audio (stdin or a file) and keeps "playing".
SLOW_PLAYER = (sys.executable, "-c", "import time; time.sleep(60)")
LONG = ("Your payment was received. Please do not leave. The network is slow to answer. "
        "We are checking; your money is safe. ") * 6


def speech(tmp_path: Path, **kw: object) -> Speech:
    settings = SpeechSettings(**{"record_dir": tmp_path / "rec", "player": SILENT, **kw})
    s = Speech(settings, "PHP")
    s.start()
    return s


def wav_seconds(path: Path) -> float:
    assert path.read_bytes()[:4] == b"RIFF" and path.read_bytes()[8:12] == b"WAVE"
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def peak(path: Path) -> int:
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2
        samples = array.array("h", w.readframes(w.getnframes()))
    return max(abs(x) for x in samples)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------ text for the voice
@pytest.mark.parametrize(("text", "lang", "spoken"), [
    ("Still to pay: ₱50.00", "en", "Still to pay: 50 pesos"),
    ("₱1.00", "en", "1 peso"),
    ("₱1,250.50", "en", "1250 pesos and 50 centavos"),
    ("₱0.01", "en", "1 centavo"),
    ("PHP 20.00", "en", "20 pesos"),
    ("还需支付\uff1a₱50.00", "zh_CN", "还需支付\uff1a50元"),
    ("₱12.50", "zh_CN", "12元5角"),
    ("₱12.05", "zh_CN", "12元零5分"),
    ("₱0.50", "zh_CN", "5角"),
    ("✓ Done!\u200b", "en", "Done!"),
    ("◀ Back", "en", "Back"),
    ("✕ Cancel", "en", "Cancel"),
    ("●  ○  ○", "en", ""),
    ("▶ Next: ₱20.00 · Load", "en", "Next: 20 pesos, Load"),
    ("This screen will close in 20 s.", "en", "This screen will close in 20 seconds."),
    ("本页面将在 20 秒后关闭。", "zh_CN", "本页面将在 20 秒后关闭。"),
])
def test_speakable(text: str, lang: str, spoken: str) -> None:
    assert speakable(text, lang, "PHP") == spoken


def test_speakable_reads_the_kiosks_currency_only() -> None:
    assert speakable("¥100.00", "en", "CNY") == "100 yuan"
    assert speakable("$5.00", "en", "PHP") == "$5.00"        # not the kiosk's money: as is


# ------------------------------------------------------------------ the espeak-ng voice
@pytest.mark.parametrize(("lang", "text"), [
    ("en", "Still to pay: ₱50.00"),
    ("zh_CN", "还需支付\uff1a₱50.00"),
])
async def test_say_records_a_wav(tmp_path: Path, lang: str, text: str) -> None:
    s = speech(tmp_path)
    s.say(text, lang)
    await s.idle()
    assert s.last_recording is not None and s.last_recording.parent == tmp_path / "rec"
    assert wav_seconds(s.last_recording) > 0.3
    assert s.said == [(lang, speakable(text, lang, "PHP"))]


async def test_say_never_blocks_the_loop(tmp_path: Path) -> None:
    s = speech(tmp_path)
    t0 = time.monotonic()
    s.say(LONG, "en")
    assert time.monotonic() - t0 < 0.05
    await s.close()


@pytest.mark.parametrize("record", [True, False], ids=["recorded", "piped"])
async def test_a_second_say_interrupts_the_first(tmp_path: Path, record: bool) -> None:
    s = speech(tmp_path, player=SLOW_PLAYER, record_dir=tmp_path / "rec" if record else None)
    s.say(LONG, "en")
    # The player has the audio and is "playing".
    await until(lambda: len(s._procs) == 2)     # recorded: espeak-ng is done by then
    assert len(s.running) == (1 if record else 2)
    first = s.running
    s.say("Cancelled", "en")
    await until(lambda: bool(s.running) and not set(s.running) & set(first))
    assert all(gone(pid) for pid in first)       # killed and reaped, the group with them
    assert [t for _, t in s.said] == [speakable(LONG, "en", "PHP"), "Cancelled"]
    await s.close()
    assert not s.running and not s.speaking


async def test_stop_and_end(tmp_path: Path) -> None:
    s = speech(tmp_path, player=SLOW_PLAYER, record_dir=None)
    s.say(LONG, "en")
    await until(lambda: len(s.running) == 2)
    pids = s.running
    s.volume_up()
    s.end()
    await s.idle()
    assert all(gone(p) for p in pids)
    assert not s.enabled and s.volume == 100
    s.say("Hello", "en")                    # speech mode off: nothing
    assert not s.speaking and len(s.said) == 1


async def test_volume_steps_stay_in_bounds_and_last_between_utterances(tmp_path: Path) -> None:
    s = speech(tmp_path)
    assert s.volume == 100
    for _ in range(20):
        s.volume_up()
    assert s.volume == VOLUME_MAX
    s.say("Still to pay", "en")
    await s.idle()
    loud = s.last_recording
    assert s.volume == VOLUME_MAX
    for _ in range(20):
        s.volume_down()
    assert s.volume == VOLUME_MIN
    s.volume_up()
    s.volume_up()
    s.say("Still to pay", "en")
    await s.idle()
    quiet = s.last_recording
    assert loud and quiet and peak(loud) > 2 * peak(quiet) > 0    # espeak-ng -a is used
    s.end()
    assert s.volume == 100


async def test_repeat_says_the_last_text_again(tmp_path: Path) -> None:
    s = speech(tmp_path)
    s.repeat()                               # nothing said yet: nothing
    assert s.said == []
    s.say(["Insert your banknotes", "Still to pay: ₱30.00"], "en")
    await s.idle()
    first = s.last_recording
    s.repeat()
    await s.idle()
    assert s.said == [("en", "Insert your banknotes. Still to pay: 30 pesos")] * 2
    assert s.last_recording != first and s.last_recording is not None
    assert wav_seconds(s.last_recording) > 1.0


async def test_keys(tmp_path: Path) -> None:
    s = speech(tmp_path)
    s.end()
    assert s.key("numpadadd") is None and s.volume == 100     # speech off: not a speech key
    assert s.key("*") == "start" and s.enabled
    assert s.key("5") is None and s.key("enter") is None      # the keypad navigation's
    s.say("Finish", "en")
    await s.idle()
    assert s.key("KP_Add") == "volume_up" and s.volume == 120
    assert s.key("-") == "volume_down" and s.volume == 100
    assert s.key(".") == "repeat"
    assert s.key("numpaddivide") == "code"
    await s.idle()
    assert [t for _, t in s.said] == ["Finish"] * 4           # each volume step heard
    assert s.key(KEY_START) == "end" and not s.enabled


async def test_a_missing_player_warns_once_and_carries_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = speech(tmp_path, player=("/nonexistent/player",), record_dir=None)
    with caplog.at_level(logging.WARNING, logger="kiosk.speech"):
        s.say("Insert your banknotes", "en")
        await s.idle()
        s.say("Still to pay", "en")
        await s.idle()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "/nonexistent/player" in warnings[0].getMessage()
    assert warnings[0].exc_info is None
    assert [t for _, t in s.said] == ["Insert your banknotes", "Still to pay"]
    assert not s.running


async def test_a_failing_player_or_engine_warns_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fail = speech(tmp_path, player=(sys.executable, "-c", "import sys; sys.exit('no card')"))
    missing = speech(tmp_path, espeak="/nonexistent/espeak-ng")
    with caplog.at_level(logging.WARNING, logger="kiosk.speech"):
        for s in (fail, missing, fail, missing):
            s.say("Cancelled", "en")
            await s.idle()
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 2 and all(r.exc_info is None for r in caplog.records)
    assert "no card" in msgs[0] and "/nonexistent/espeak-ng" in msgs[1]
    assert len(fail.said) == len(missing.said) == 2


async def test_a_voucher_code_is_spoken_but_neither_kept_nor_recorded(tmp_path: Path) -> None:
    heard = tmp_path / "heard.wav"
    # A "sound card" that keeps what it was given to play.
    keep = "import shutil, sys; shutil.copyfileobj(sys.stdin.buffer, open(sys.argv[1], 'wb'))"
    player = (sys.executable, "-c", keep, str(heard))
    s = speech(tmp_path, player=player)
    tr = Translator(("en",), "en")
    s.say([line(tr, "Cancelled"), line(tr, "Your voucher code is {code}.",
                                       code=Digits("1234567812345670"))], "en")
    await s.idle()
    assert s.said == [("en", "Cancelled. Your voucher code is {code}.")]
    assert list((tmp_path / "rec").glob("*")) == []
    assert heard.read_bytes()[:4] == b"RIFF" and len(heard.read_bytes()) > 2 * RATE * 2


# ------------------------------------------------------------------ recorded prompt sets
def tone(path: Path, frames: int, rate: int = RATE, width: int = 2, channels: int = 1) -> Path:
    """A clip of `frames` samples whose value tells the clips apart once joined."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(bytes([frames % 251, 0]) * (frames * channels * width // 2))
    return path


NUMBERS = [*map(str, range(20)), *map(str, range(20, 100, 10))]


def clip_set(folder: Path, prompts: str = "") -> Path:
    """A Filipino-like set: every number clip a different length."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["[prompts]", '"Cancelled" = "kinansela.wav"',
             '"Still to pay: {amount}" = ["babayaran.wav", "{amount}"]', prompts, "",
             "[numbers]"]
    for i, n in enumerate([*NUMBERS, "hundred", "thousand"]):
        tone(folder / f"n{n}.wav", 1000 + 10 * i)
        lines.append(f'"{n}" = "n{n}.wav"')
    lines += ["", "[words]"]
    for i, word in enumerate(["peso", "pesos", "centavo", "centavos", "and"]):
        tone(folder / f"{word}.wav", 3000 + 10 * i)
        lines.append(f'{word} = "{word}.wav"')
    tone(folder / "babayaran.wav", 4000)
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(folder / "kinansela.wav"),
                    "Cancelled"], check=True)          # a clip rendered by espeak-ng
    (folder / "prompts.toml").write_text("\n".join(lines) + "\n")
    return folder


def frames_of(folder: Path, *names: str) -> bytes:
    out = b""
    for name in names:
        with wave.open(str(folder / name)) as w:
            out += w.readframes(w.getnframes())
    return out


def read_wav(data: bytes, tmp_path: Path) -> tuple[int, bytes]:
    (tmp_path / "out.wav").write_bytes(data)
    with wave.open(str(tmp_path / "out.wav")) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE)
        return w.getnframes(), w.readframes(w.getnframes())


def test_amounts_are_composed_from_number_clips(tmp_path: Path) -> None:
    folder = clip_set(tmp_path / "fil")
    voice = ClipVoice(folder, "fil", "PHP")
    assert voice.can_say("Still to pay: {amount}", {"amount": Amount(12500)})
    n, data = read_wav(voice.compose("Still to pay: {amount}", {"amount": Amount(12500)}),
                       tmp_path)
    parts = ("babayaran.wav", "n1.wav", "nhundred.wav", "n20.wav", "n5.wav", "pesos.wav")
    expected = frames_of(folder, *parts)
    assert data == expected and n == len(expected) // 2
    assert n == 4000 + 1010 + 1280 + 1200 + 1050 + 3010
    # 1 peso and 50 centavos; 0.05: centavos only
    assert voice.amount(150) == [folder / p for p in (
        "n1.wav", "peso.wav", "and.wav", "n50.wav", "centavos.wav")]
    assert voice.amount(5) == [folder / "n5.wav", folder / "centavos.wav"]
    assert voice.number(2019) == [folder / p for p in (
        "n2.wav", "nthousand.wav", "n19.wav")]
    assert voice.value(Digits("1203")) == [folder / f"n{d}.wav" for d in "1203"]


def test_an_exact_number_clip_wins(tmp_path: Path) -> None:
    folder = clip_set(tmp_path / "fil")
    tone(folder / "isang_daan.wav", 777)
    text = (folder / "prompts.toml").read_text().replace(
        '[words]', '"100" = "isang_daan.wav"\n\n[words]')
    (folder / "prompts.toml").write_text(text)
    voice = ClipVoice(folder, "fil", "PHP")
    assert voice.number(125) == [folder / p for p in ("isang_daan.wav", "n20.wav", "n5.wav")]


def test_what_a_set_cannot_say(tmp_path: Path) -> None:
    voice = ClipVoice(clip_set(tmp_path / "fil"), "fil", "PHP")
    assert voice.can_say("Cancelled")
    assert not voice.can_say("Finish")                              # no recording
    assert not voice.can_say("Still to pay: {amount}")              # no value for the field
    assert not voice.can_say("Still to pay: {amount}", {"amount": Amount(10**9 * 100)})
    assert not voice.can_say("Still to pay: {amount}", {"amount": "soon"})


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: tone(f / "n7.wav", 100, width=1), r'numbers\.7: n7\.wav: .*16-bit mono'),
    (lambda f: tone(f / "n7.wav", 100, channels=2), r"numbers\.7: n7\.wav: 2 channel"),
    (lambda f: tone(f / "n7.wav", 100, rate=16000), r"numbers\.7: n7\.wav: 16000 Hz, but .* 22050"),
    (lambda f: (f / "n7.wav").unlink(), r"numbers\.7: n7\.wav: no such file"),
    (lambda f: (f / "n7.wav").write_bytes(b"RIFF...."), r"numbers\.7: n7\.wav: not a PCM WAV"),
])
def test_a_bad_clip_is_one_clear_line(tmp_path: Path, change: Callable[[Path], object],
                                      message: str) -> None:
    folder = clip_set(tmp_path / "fil")
    change(folder)
    with pytest.raises(ConfigError, match=r"^.*prompts\.toml: " + message) as exc:
        ClipVoice(folder, "fil", "PHP")
    assert "\n" not in str(exc.value)


def test_a_prompt_must_say_every_field(tmp_path: Path) -> None:
    folder = clip_set(tmp_path / "fil", '"Your voucher for {amount}" = "babayaran.wav"')
    with pytest.raises(ConfigError, match=r"the clips leave out \{amount\}"):
        ClipVoice(folder, "fil", "PHP")
    folder = clip_set(tmp_path / "fil2", '"Cancelled." = ["babayaran.wav", "{n}"]')
    with pytest.raises(ConfigError, match=r"\{n\} is not a field of this message"):
        ClipVoice(folder, "fil2", "PHP")


def test_the_recording_helper(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert speech_clips.main(["keys"]) == 0
    keys = tomllib.loads(capsys.readouterr().out)          # TOML lines to fill in
    assert keys["Still to pay: {amount}"] == ["", "{amount}"] and keys["Cancelled"] == ""
    assert "That note was not accepted. Please try another one." in keys      # notices too
    folder = clip_set(tmp_path / "fil")
    assert speech_clips.main(["check", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "2 prompts" in out and "22050 Hz 16-bit mono" in out
    assert "no recording (the fallback voice says it): Insert your banknotes" in out
    assert "says it): Cancelled\n" not in out
    tone(folder / "n3.wav", 100, rate=8000)
    assert speech_clips.main(["check", str(folder)]) == 1
    assert "numbers.3: n3.wav: 8000 Hz" in capsys.readouterr().err


def fil_speech(tmp_path: Path) -> Speech:
    settings = SpeechSettings(record_dir=tmp_path / "rec", player=SILENT,
                              voices={"en": "en-us"}, clip_dirs={"fil": clip_set(
                                  tmp_path / "fil")})
    s = Speech(settings, "PHP")
    s.start()
    return s


def fil_line(msgid: str, text: str, english: str, **args: object) -> Line:
    return Line(text, msgid, args, english)


async def test_a_message_with_a_recording_is_played_from_clips(tmp_path: Path) -> None:
    s = fil_speech(tmp_path)
    line = fil_line("Still to pay: {amount}", "Babayaran pa: ₱125.00", "Still to pay: ₱125.00",
                    amount=Amount(12500))
    s.say(line, "fil")
    await s.idle()
    assert s.said == [("fil", "Babayaran pa: ₱125.00")]
    assert s.last_recording is not None
    assert s.last_recording.read_bytes() == s.clips["fil"].compose(line.msgid, line.args)


async def test_a_message_without_a_recording_falls_back_to_english(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = fil_speech(tmp_path)
    s.say([fil_line("Finish", "Tapusin", "Finish"),
           fil_line("Still to pay: {amount}", "Babayaran pa: ₱1.00", "Still to pay: ₱1.00",
                    amount=Amount(100)),
           fil_line("Your voucher for {amount}", "Ang iyong voucher: ₱5.00",
                    "Your voucher for ₱5.00", amount=Amount(500))], "fil")
    await s.idle()
    # The English voice says the English source, never the Filipino words; clips in order.
    assert s.said == [("en", "Finish"), ("fil", "Babayaran pa: ₱1.00"),
                      ("en", "Your voucher for 5 pesos")]
    recordings = sorted((tmp_path / "rec").glob("*.wav"))
    assert [p.name.rsplit("-", 1)[1] for p in recordings] == ["en.wav", "fil.wav", "en.wav"]
    assert all(wav_seconds(p) > 0.3 for p in recordings)
    # A plain text (no English source) in a language no voice knows: not guessed at.
    with caplog.at_level(logging.WARNING, logger="kiosk.speech"):
        s.say("Tapusin", "fil")
        s.say("Cancelled", "fil")                    # ... unless it is a recording's key
        await s.idle()
    assert len(caplog.records) == 1 and s.said[-1] == ("fil", "Cancelled")


# ------------------------------------------------------------------ [speech]
def load(tmp_path: Path, data: dict[str, object]) -> SpeechSettings:
    return load_speech(Table(tmp_path / "kiosk.toml", "speech", data), ("en", "zh_CN", "fil"))


def test_speech_settings(tmp_path: Path) -> None:
    clip_set(tmp_path / "voice" / "fil")
    conf = load(tmp_path, {
        "enabled_at_start": True, "rate": 130, "volume": 80, "player": "aplay -q -D plug:x",
        "record_dir": "rec", "clip_dirs": {"fil": "voice/fil"}, "start_key": "F1",
        "voices": {"zh_CN": "cmn"}})
    assert conf.enabled_at_start and conf.rate == 130 and conf.volume == 80
    assert conf.player == ("aplay", "-q", "-D", "plug:x")
    assert conf.record_dir == tmp_path / "rec"
    assert conf.clip_dirs == {"fil": tmp_path / "voice" / "fil"}
    assert conf.voices == {"en": "en-us", "zh_CN": "cmn"} and conf.start_key == "F1"
    assert load(tmp_path, {}) == SpeechSettings()
    assert load(tmp_path, {"voices": {"zh_CN": ""}}).voices == {"en": "en-us"}


@pytest.mark.parametrize(("data", "key", "reason"), [
    ({"rate": 20}, "speech.rate", "from 80 to 450, got 20"),
    ({"volume": 250}, "speech.volume", "from 0 to 200"),
    ({"start_key": "KP_Enter"}, "speech.start_key", "must be one of KP_Multiply"),
    ({"player": ""}, "speech.player", "must be a command"),
    ({"player": "aplay 'q"}, "speech.player", "cannot be split"),
    ({"voices": {"zh-CN": "cmn"}}, "speech.voices.zh-CN", "not a language of ui.languages"),
    ({"voices": {"en": "en us"}}, "speech.voices.en", "espeak-ng voice name"),
    ({"voices": {"en": ""}}, "speech.fallback_language", "'en' has no voice"),
    ({"clip_dirs": {"en": "voice"}}, "speech.clip_dirs.en", "has a voice"),
    ({"clip_dirs": {"fil": "nowhere"}}, "speech.clip_dirs.fil", "no prompts.toml"),
    ({"enabled": True}, "speech.enabled", "unknown key"),
])
def test_speech_settings_errors(tmp_path: Path, data: dict[str, object], key: str,
                                reason: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, data)
    assert exc.value.key == key and reason in exc.value.reason
    assert "\n" not in str(exc.value)


def test_a_bad_clip_set_fails_the_config(tmp_path: Path) -> None:
    folder = clip_set(tmp_path / "voice" / "fil")
    tone(folder / "n3.wav", 100, rate=8000)
    with pytest.raises(ConfigError, match=r"prompts\.toml: numbers\.3: n3\.wav: 8000 Hz"):
        load(tmp_path, {"clip_dirs": {"fil": "voice/fil"}})


def test_the_default_config_has_speech_off_until_asked() -> None:
    from kiosk.config import load as load_config
    conf = load_config()
    assert conf.speech.enabled_at_start is False and conf.speech.fallback_language == "en"
    assert conf.speech.voices["en"] == "en-us" and conf.speech.rate < 175
