"""Unit tests for belle_datagen.stats; expected values are worked out by hand in the comments."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from belle_datagen import stats as stats_module
from belle_datagen.stats import MAX_DROP_EXAMPLES, DatasetStats, chinese_share


@pytest.mark.parametrize(
    ("text", "share"),
    [
        ("你好ab", 0.5),  # 2 of 4
        ("", 0.0),
        ("   \n\t", 0.0),  # no visible characters at all
        ("hello world", 0.0),
        ("你好，世界！", 1.0),  # fullwidth comma and exclamation mark count as CJK punctuation
        ("《三体》", 1.0),  # CJK brackets from the U+3000 block
        ("你 好\u3000a", 2 / 3),  # ordinary and ideographic spaces are both whitespace
        ("ＡＢ１你", 0.25),  # fullwidth letters and digits are not Chinese
        ("“你”…", 0.25),  # curly quotes and the ellipsis are shared with English
        ("\U00020000a", 0.5),  # an extension B ideograph, outside the BMP
    ],
)
def test_chinese_share(text, share):
    assert chinese_share(text) == pytest.approx(share)


def conv(*values: str, system: str | None = None) -> dict:
    turns = [{"from": "human" if i % 2 == 0 else "assistant", "value": v} for i, v in enumerate(values)]
    out: dict = {"conversations": turns}
    if system is not None:
        out["system"] = system
    return out


def test_empty_stats():
    assert DatasetStats().to_dict() == {
        "rows": 0,
        "turns": 0,
        "assistant_turns": 0,
        "multi_turn_rows": 0,
        "characters": {"human": 0, "assistant": 0, "system": 0},
        "mean_characters_per_row": 0.0,
        "max_characters_per_row": 0,
        "chinese_share": 0.0,
        "formats": {},
        "dropped": {},
        "dropped_total": 0,
        "drop_examples": [],
    }


def test_stats_over_a_small_dataset():
    stats = DatasetStats()
    # row 1: human "你好ab" (4 chars, 2 CJK), assistant "你好！" (3 chars, 3 CJK)
    stats.add_row(conv("你好ab", "你好！"), "belle_instruction")
    # row 2: two exchanges; human "hi"+"再见" (4 chars, 2 CJK), assistant "hello"+"bye" (8, 0);
    # system "助手" (2 chars) counts toward characters but not toward chinese_share
    stats.add_row(conv("hi", "hello", "再见", "bye", system="助手"), "sharegpt")
    # row 3: "a b" has 3 characters, 2 of them visible
    stats.add_row(conv("a b", "好"), "belle_instruction")
    stats.add_drop(7, "invalid_json", "Expecting value: line 1 column 1 (char 0)")
    stats.add_drop(9, "invalid_row", "expected non-empty text, found an empty string", "output")
    stats.add_drop(12, "invalid_row", "expected a string, found number", "conversations[1].value")

    result = stats.to_dict()
    assert result["rows"] == 3
    assert result["turns"] == 2 + 4 + 2
    assert result["assistant_turns"] == 1 + 2 + 1
    assert result["multi_turn_rows"] == 1
    assert result["characters"] == {"human": 4 + 4 + 3, "assistant": 3 + 8 + 1, "system": 2}
    # per row: 7, 14 (4 + 8 + 2 system), 4
    assert result["mean_characters_per_row"] == pytest.approx(25 / 3)
    assert result["max_characters_per_row"] == 14
    # CJK: 2 + 3 + 2 + 0 + 0 + 1 = 8 over visible 4 + 3 + 4 + 8 + 2 + 1 = 22
    assert result["chinese_share"] == pytest.approx(8 / 22)
    assert result["formats"] == {"belle_instruction": 2, "sharegpt": 1}
    assert result["dropped"] == {"invalid_json": 1, "invalid_row": 2}
    assert result["dropped_total"] == 3
    assert result["drop_examples"] == [
        {"line": 7, "reason": "invalid_json", "message": "Expecting value: line 1 column 1 (char 0)", "field": None},
        {
            "line": 9,
            "reason": "invalid_row",
            "message": "expected non-empty text, found an empty string",
            "field": "output",
        },
        {
            "line": 12,
            "reason": "invalid_row",
            "message": "expected a string, found number",
            "field": "conversations[1].value",
        },
    ]
    assert json.loads(json.dumps(result)) == result


def test_chinese_share_is_character_weighted_not_a_mean_of_rows():
    stats = DatasetStats()
    stats.add_row(conv("好", "好"), "belle_instruction")  # 2 CJK of 2
    stats.add_row(conv("abcd", "efgh"), "belle_instruction")  # 0 of 8
    # A mean of per-row shares would be 0.5; weighting by characters gives 2 / 10.
    assert stats.to_dict()["chinese_share"] == pytest.approx(0.2)


def test_only_the_first_drops_are_kept_as_examples_but_all_are_counted():
    stats = DatasetStats()
    for line in range(1, 1001):
        stats.add_drop(line, "duplicate", "same conversation as an earlier row")
    stats.add_drop(1001, "empty_line", "line is empty")
    result = stats.to_dict()
    assert result["dropped"] == {"duplicate": 1000, "empty_line": 1}
    assert result["dropped_total"] == 1001
    assert stats.dropped_total == 1001
    assert MAX_DROP_EXAMPLES == 20
    assert [example["line"] for example in result["drop_examples"]] == list(range(1, 21))
    assert len(stats.drop_examples) == 20


def test_long_drop_messages_are_truncated():
    stats = DatasetStats()
    stats.add_drop(1, "invalid_json", "x" * 10_000)
    assert stats.to_dict()["drop_examples"][0]["message"] == "x" * 500


def test_to_dict_returns_copies():
    stats = DatasetStats()
    stats.add_row(conv("你好", "好"), "alpaca")
    stats.add_drop(2, "duplicate", "dup")
    first = stats.to_dict()
    first["characters"]["human"] = 99
    first["formats"]["alpaca"] = 99
    first["drop_examples"][0]["line"] = 99
    second = stats.to_dict()
    assert second["characters"]["human"] == 2
    assert second["formats"] == {"alpaca": 1}
    assert second["drop_examples"][0]["line"] == 2


def test_memory_does_not_grow_with_rows():
    stats = DatasetStats()
    row = conv("问" * 50, "答" * 100)
    for _ in range(1_000):
        stats.add_row(row, "belle_conversations")
        stats.add_drop(1, "duplicate", "dup")
    # Only memory allocated by the stats module counts: tracemalloc also sees other threads of this
    # process (a test gateway's sweeper), which allocate whatever they like meanwhile.
    only_stats = [tracemalloc.Filter(True, stats_module.__file__)]
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot().filter_traces(only_stats)
        for _ in range(50_000):
            stats.add_row(row, "belle_conversations")
            stats.add_drop(1, "duplicate", "dup")
        after = tracemalloc.take_snapshot().filter_traces(only_stats)
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # Storing even one pointer per row would cost 400 kB here; counters cost nothing.
    assert grown < 20_000
    assert stats.rows == 51_000
    assert stats.to_dict()["characters"] == {"human": 50 * 51_000, "assistant": 100 * 51_000, "system": 0}
