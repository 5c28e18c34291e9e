"""Integers written in Chinese numerals: 305 -> 三百零五, 10010 -> 一万零一十, 大写 305 -> 叁佰零伍."""

from __future__ import annotations

_DIGITS = "零一二三四五六七八九"
_UNITS = ("", "十", "百", "千")
_DIGITS_FORMAL = "零壹贰叁肆伍陆柒捌玖"
_UNITS_FORMAL = ("", "拾", "佰", "仟")
_SECTIONS = ("", "万", "亿", "万亿")
LIMIT = 10**16


def _section(value: int, digits: str, units: tuple[str, ...]) -> str:
    """0 < value < 10000; inner zeros collapse to one 零 (1005 -> 一千零五), trailing zeros vanish."""
    out, pending_zero = [], False
    for power in (3, 2, 1, 0):
        digit = value // 10**power % 10
        if digit == 0:
            pending_zero = bool(out)
            continue
        if pending_zero:
            out.append(digits[0])
            pending_zero = False
        out.append(digits[digit] + units[power])
    return "".join(out)


def to_chinese(number: int, *, formal: bool = False) -> str:
    """`number` in Chinese numerals (formal = 大写, as on cheques); |number| < 10**16."""
    if abs(number) >= LIMIT:
        raise ValueError(f"{number} is too large for Chinese numerals here")
    digits, units = (_DIGITS_FORMAL, _UNITS_FORMAL) if formal else (_DIGITS, _UNITS)
    if number == 0:
        return digits[0]
    if number < 0:
        return "负" + to_chinese(-number, formal=formal)
    sections = []
    rest = number
    while rest:
        sections.append(rest % 10000)
        rest //= 10000
    out: list[str] = []
    for index in range(len(sections) - 1, -1, -1):
        value = sections[index]
        if value == 0:
            continue
        # A zero is read between sections when this one lacks its thousands (一万零五百).
        if out and value < 1000:
            out.append(digits[0])
        elif out and sections[index + 1] == 0 and not out[-1].startswith(digits[0]):
            out.append(digits[0])  # a whole empty section in between: 一亿零一千
        out.append(_section(value, digits, units) + _SECTIONS[index])
    text = "".join(out)
    # Everyday usage drops the leading 一 of 一十 (十五, 十万), never in 大写 or mid-number.
    if not formal and text.startswith("一十"):
        text = text[1:]
    return text
