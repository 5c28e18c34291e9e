"""Preference pairs from each source format into the canonical pair, and the errors that name the field."""

from __future__ import annotations

import pytest

from belle_shared.formats import RowError
from belle_shared.preferences import PREFERENCE_FORMATS, is_preference_row, prompt_messages, to_preference

PAIR = {"conversations": [{"from": "human", "value": "2+2?"}], "chosen": "4", "rejected": "5"}


@pytest.mark.parametrize("row, fmt", [
    ({"input": {"messages": [{"role": "user", "content": "2+2?"}]},
      "preferred_output": [{"role": "assistant", "content": "4"}],
      "non_preferred_output": [{"role": "assistant", "content": "5"}]}, "openai_preference"),
    ({"prompt": "2+2?", "chosen": "4", "rejected": "5"}, "prompt_chosen_rejected"),
    ({"prompt": [{"role": "user", "content": "2+2?"}], "chosen": [{"role": "assistant", "content": "4"}],
      "rejected": [{"role": "assistant", "content": "5"}]}, "prompt_chosen_rejected"),
    ({"instruction": "2+2?", "input": "", "chosen": "4", "rejected": "5"}, "alpaca_preference"),
    ({"conversations": [{"from": "human", "value": "2+2?"}], "chosen": {"from": "gpt", "value": "4"},
      "rejected": {"from": "gpt", "value": "5"}}, "sharegpt_preference"),
    ({"chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
      "rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}]}, "implicit_prompt"),
])
def test_every_source_format_gives_the_same_canonical_pair(row, fmt):
    assert is_preference_row(row)
    assert to_preference(row) == (PAIR, fmt)
    assert fmt in PREFERENCE_FORMATS


def test_system_prompts_and_earlier_turns_stay_in_the_prompt():
    pair, _ = to_preference({"input": {"messages": [
        {"role": "developer", "content": "简短"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"}]}, "preferred_output": [{"role": "assistant", "content": "d"}],
        "non_preferred_output": [{"role": "assistant", "content": "e"}]})
    assert pair["system"] == "简短" and [t["from"] for t in pair["conversations"]] == ["human", "assistant", "human"]
    assert prompt_messages(pair) == [{"role": "system", "content": "简短"}, {"role": "user", "content": "a"},
                                     {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    alpaca, _ = to_preference({"instruction": "q2", "history": [["q1", "a1"]], "system": "s", "chosen": "x",
                               "rejected": "y"})
    assert alpaca["system"] == "s" and [t["value"] for t in alpaca["conversations"]] == ["q1", "a1", "q2"]


@pytest.mark.parametrize("row, field, words", [
    ({"prompt": "q", "chosen": "same", "rejected": " same "}, "rejected", "the same text"),
    ({"input": {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
      "preferred_output": "x", "non_preferred_output": "y"}, "input.messages[1].role", "end with the user's turn"),
    ({"input": {"messages": [{"role": "user", "content": " "}]}, "preferred_output": "x", "non_preferred_output": "y"},
     "input.messages[0].content", "non-empty"),
    ({"input": {"messages": []}, "preferred_output": "x", "non_preferred_output": "y"}, "input.messages", "empty array"),
    ({"prompt": "q", "chosen": [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}],
      "rejected": "c"}, "chosen", "one assistant message"),
    ({"prompt": "q", "chosen": "a", "rejected": [{"role": "user", "content": "b"}]}, "rejected[0].role", "assistant"),
    ({"prompt": "q", "chosen": 3, "rejected": "b"}, "chosen", "found number"),
    ({"prompt": "q", "chosen": "a"}, "rejected", 'missing required key "rejected"'),
    ({"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
      "rejected": [{"role": "user", "content": "other"}, {"role": "assistant", "content": "b"}]}, "rejected",
     "the same up to their last message"),
    ({"preferred_output": "x", "non_preferred_output": "y"}, "input", "expected an object"),
])
def test_a_malformed_pair_names_its_field(row, field, words):
    with pytest.raises(RowError) as info:
        to_preference(row)
    assert info.value.field == field and words in info.value.message


def test_rows_that_are_not_pairs():
    assert not is_preference_row({"instruction": "q", "output": "a"}) and not is_preference_row([1])
    with pytest.raises(RowError, match="needs its prompt"):
        to_preference({"chosen": "a", "rejected": "b"})
    with pytest.raises(RowError, match="not a preference pair"):
        to_preference({"instruction": "q", "output": "a"})
