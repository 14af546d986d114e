"""Line breaking: Chinese lines break between words (the translations' U+200B marks), never
inside one; kinsoku keeps punctuation where it belongs; Latin text wraps on spaces."""
# Full-width Chinese punctuation is what these tests are about.
# ruff: noqa: RUF001

from __future__ import annotations

import pytest

from kiosk import i18n
from kiosk.linebreak import MARK, needs_wrap, strip_marks, wrap
from kiosk.messages import extract


def measure(text: str) -> float:
    """A fake font: a CJK character is 1.0 wide, anything else 0.5."""
    return sum(1.0 if ord(ch) >= 0x2E80 else 0.5 for ch in text)


def marked(text: str) -> str:
    return text.replace("|", MARK)


def test_latin_text_wraps_on_spaces_greedily() -> None:
    assert wrap("aa bb cc dd", 2.5, measure) == ["aa bb", "cc dd"]
    assert wrap("aa bb cc dd", 4.0, measure) == ["aa bb cc", "dd"]
    assert wrap("aa bb", 10, measure) == ["aa bb"]


def test_newlines_are_kept_and_blank_lines_too() -> None:
    assert wrap("one\n\ntwo three", 2.5, measure) == ["one", "", "two", "three"]
    assert wrap("", 5, measure) == [""]


def test_trailing_spaces_are_trimmed() -> None:
    assert wrap("aa    bb   ", 1.0, measure) == ["aa", "bb"]
    assert wrap("aa   ", 5, measure) == ["aa"]


def test_a_word_wider_than_the_line_is_broken_by_character_as_a_last_resort() -> None:
    assert wrap("ab abcdefgh", 2.0, measure) == ["ab", "abcd", "efgh"]
    assert wrap("代金券号码", 2.0, measure) == ["代金", "券号", "码"]


def test_marks_are_break_opportunities_and_never_shown() -> None:
    lines = wrap(marked("请|插入|您的|SIM卡"), 4.5, measure)
    assert lines == ["请插入", "您的SIM卡"]
    assert all(MARK not in line for line in lines)


@pytest.mark.parametrize(("text", "width", "lines"), [
    # 卡 of SIM卡: the whole word moves on
    ("请|插入|您的|SIM卡", 6.5, ["请插入您的", "SIM卡"]),
    # 码 of 号码
    ("请|手动|输入|号码。", 6.0, ["请手动输入", "号码。"]),
    # 识别器 / 识币器: never 识 | 币器
    ("纸币|识币器|出现|故障。", 5.0, ["纸币识币器", "出现故障。"]),
    ("纸币|识币器|出现|故障。", 4.0, ["纸币", "识币器", "出现", "故障。"]),
    # 套餐 of 月度套餐
    ("月度|和|季度|套餐", 5.0, ["月度和季度", "套餐"]),
])
def test_chinese_never_orphans_part_of_a_word(text: str, width: float,
                                               lines: list[str]) -> None:
    assert wrap(marked(text), width, measure) == lines


def test_the_real_translation_of_the_sim_hint_keeps_sim_card_whole() -> None:
    zh = i18n.load("zh_CN").gettext("Or insert your SIM card")
    for width in (3.0, 4.0, 5.0, 5.5, 6.0, 7.0):
        lines = wrap(zh, width, measure)
        assert "".join(lines) == strip_marks(zh)
        assert any("SIM卡" in line for line in lines), (width, lines)


def test_breaks_after_chinese_punctuation_without_marks() -> None:
    assert wrap("你好，世界。再见", 5.0, measure) == ["你好，", "世界。再见"]


def test_cjk_and_latin_meet_at_a_break_in_unmarked_text() -> None:
    assert wrap("流量abc流量", 3.5, measure) == ["流量abc", "流量"]
    assert wrap("流量abc流量", 2.5, measure) == ["流量", "abc", "流量"]


def test_a_marked_text_names_its_own_word_boundaries() -> None:
    # Unmarked, SIM and 卡 may part; marked, SIM卡 is one word.
    assert wrap("您的SIM卡", 3.5, measure) == ["您的SIM", "卡"]
    assert wrap(marked("您的|SIM卡"), 3.5, measure) == ["您的", "SIM卡"]


@pytest.mark.parametrize("closing", list("，。、：；！？）」』》…") + list(",.:;!?)"))
def test_no_line_starts_with_closing_punctuation(closing: str) -> None:
    text = marked(f"请|插入|号码{closing}")
    for width in (2.0, 3.0, 4.0, 5.0):
        lines = wrap(text, width, measure)
        assert not any(line[:1] == closing for line in lines), (width, lines)
        assert "".join(lines) == strip_marks(text)


@pytest.mark.parametrize("opening", list("（「『《"))
def test_no_line_ends_with_opening_punctuation(opening: str) -> None:
    text = marked(f"请将|SIM卡{opening}连同|卡托）插入")
    for width in (3.0, 4.0, 5.0, 5.5, 6.0):
        lines = wrap(text, width, measure)
        assert not any(line.endswith(opening) for line in lines), (width, lines)
        assert "".join(lines) == strip_marks(text)


def test_kinsoku_also_holds_when_a_word_is_broken_by_character() -> None:
    lines = wrap("你好，世界。", 2.0, measure)
    assert lines == ["你", "好，", "世", "界。"]


def test_a_space_before_closing_punctuation_is_not_a_break() -> None:
    assert wrap("ab cd )", 2.0, measure) == ["ab", "cd )"]


def test_every_chinese_translation_wraps_into_lines_that_fit() -> None:
    zh = i18n.load("zh_CN")
    for msgid in extract():
        text = zh.gettext(msgid)
        for width in (4.0, 7.0, 12.0):
            lines = wrap(text, width, measure)
            assert all(MARK not in line for line in lines)
            assert "".join(lines).replace(" ", "") == strip_marks(text).replace(
                " ", "").replace("\n", ""), msgid
            assert not any(line[:1] in "，。、：；！？）」』》" for line in lines), (msgid, lines)


def test_needs_wrap_and_strip_marks() -> None:
    assert needs_wrap("请输入号码")
    assert needs_wrap("a" + MARK + "b")
    assert not needs_wrap("Please type your number")
    assert not needs_wrap("Paki-type po ang iyong numero…")
    assert strip_marks(marked("请|插入|您的|SIM卡")) == "请插入您的SIM卡"
    assert strip_marks("plain") == "plain"
