"""Unit tests for belle_shared.formats: every source format, detection, and each row error."""

from __future__ import annotations

import copy

import pytest

from belle_shared.formats import FORMATS, RowError, detect_format, to_conversation


def human(text: str) -> dict:
    return {"from": "human", "value": text}


def assistant(text: str) -> dict:
    return {"from": "assistant", "value": text}


def msg(role: str, content) -> dict:
    return {"role": role, "content": content}


def assert_row_error(row, message: str, field: str | None, fmt: str = "auto") -> None:
    with pytest.raises(RowError) as info:
        to_conversation(row, fmt)
    assert info.value.message == message
    assert info.value.field == field


# ------------------------------------------------------------------------------ conversions


def test_formats_lists_the_six_public_names():
    assert FORMATS == (
        "belle_instruction",
        "alpaca",
        "belle_hf",
        "belle_conversations",
        "sharegpt",
        "openai_messages",
    )


def test_belle_instruction_joins_non_empty_input_with_a_newline():
    row = {
        "instruction": "把下面的句子翻译成英文。",
        "input": "今天天气很好。",
        "output": "The weather is nice today.",
        "category": "translation",
    }
    assert to_conversation(row) == (
        {"conversations": [human("把下面的句子翻译成英文。\n今天天气很好。"), assistant("The weather is nice today.")]},
        "belle_instruction",
    )


@pytest.mark.parametrize("extra", [{}, {"input": ""}, {"input": None}, {"input": "  \n"}, {"history": []}])
def test_belle_instruction_without_usable_input_is_the_instruction_alone(extra):
    row = {"instruction": "写一首关于春天的五言绝句。", "output": "春风拂柳绿，\n细雨润花红。", **extra}
    conv, fmt = to_conversation(row)
    assert fmt == "belle_instruction"
    assert conv == {"conversations": [human("写一首关于春天的五言绝句。"), assistant("春风拂柳绿，\n细雨润花红。")]}


def test_text_is_kept_verbatim_including_surrounding_whitespace():
    row = {"instruction": "  解释一下“内卷”。\n", "output": "\n内卷指的是……  "}
    conv, _ = to_conversation(row)
    assert conv["conversations"][0]["value"] == "  解释一下“内卷”。\n"
    assert conv["conversations"][1]["value"] == "\n内卷指的是……  "


def test_alpaca_history_comes_first_in_order():
    row = {
        "instruction": "那北京呢？",
        "input": "",
        "output": "北京是中国的首都。",
        "history": [
            ["中国的首都是哪里？", "中国的首都是北京。"],
            ["上海是什么样的城市？", "上海是中国最大的经济中心。"],
        ],
    }
    assert to_conversation(row) == (
        {
            "conversations": [
                human("中国的首都是哪里？"),
                assistant("中国的首都是北京。"),
                human("上海是什么样的城市？"),
                assistant("上海是中国最大的经济中心。"),
                human("那北京呢？"),
                assistant("北京是中国的首都。"),
            ]
        },
        "alpaca",
    )


def test_alpaca_given_explicitly_accepts_a_row_without_history():
    row = {"instruction": "你好", "output": "你好！有什么可以帮你？"}
    assert to_conversation(row, "alpaca") == (
        {"conversations": [human("你好"), assistant("你好！有什么可以帮你？")]},
        "alpaca",
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Human: 介绍一下长城。\n\nAssistant: ", "介绍一下长城。"),
        ("Human：介绍一下长城。\nAssistant：", "介绍一下长城。"),
        ("  Human:介绍一下长城。 Assistant:", "介绍一下长城。"),
        ("介绍一下长城。", "介绍一下长城。"),
        # Only the leading/trailing markers go; the text in between is kept as written.
        ("Human: 第一行\n  第二行\n\nAssistant:", "第一行\n  第二行"),
    ],
)
def test_belle_hf_strips_the_prompt_markers(raw, expected):
    row = {"input": raw, "target": "长城是中国古代的军事防御工程。"}
    assert to_conversation(row) == (
        {"conversations": [human(expected), assistant("长城是中国古代的军事防御工程。")]},
        "belle_hf",
    )


def test_belle_conversations_multi_turn_with_mixed_case_from():
    row = {
        "id": "12345",
        "conversations": [
            {"from": "Human", "value": "推荐一本科幻小说。"},
            {"from": "assistant", "value": "推荐刘慈欣的《三体》。"},
            {"from": "HUMAN ", "value": "为什么？"},
            {"from": "Assistant", "value": "它构思宏大，讨论了文明与宇宙。"},
        ],
    }
    assert to_conversation(row) == (
        {
            "conversations": [
                human("推荐一本科幻小说。"),
                assistant("推荐刘慈欣的《三体》。"),
                human("为什么？"),
                assistant("它构思宏大，讨论了文明与宇宙。"),
            ]
        },
        "belle_conversations",
    )


def test_sharegpt_maps_roles_and_moves_the_leading_system_turn():
    row = {
        "conversations": [
            {"from": "system", "value": "你是一个乐于助人的助手。"},
            {"from": "user", "value": "1+1等于几？"},
            {"from": "gpt", "value": "等于2。"},
            {"from": "human", "value": "再加3呢？"},
            {"from": "ChatGPT", "value": "等于5。"},
        ]
    }
    assert to_conversation(row) == (
        {
            "conversations": [human("1+1等于几？"), assistant("等于2。"), human("再加3呢？"), assistant("等于5。")],
            "system": "你是一个乐于助人的助手。",
        },
        "sharegpt",
    )


@pytest.mark.parametrize("name", ["gpt", "chatgpt", "bing", "bard", "model", "assistant"])
def test_sharegpt_assistant_aliases(name):
    row = {"conversations": [{"from": "user", "value": "你好"}, {"from": name, "value": "你好！"}]}
    conv, fmt = to_conversation(row, "sharegpt")
    assert fmt == "sharegpt"
    assert conv == {"conversations": [human("你好"), assistant("你好！")]}


def test_sharegpt_empty_system_prompt_is_left_out():
    row = {"conversations": [{"from": "system", "value": " "}, human("在吗"), {"from": "gpt", "value": "在"}]}
    conv, _ = to_conversation(row)
    assert conv == {"conversations": [human("在吗"), assistant("在")]}


def test_openai_messages_with_system_and_text_parts():
    row = {
        "messages": [
            {"role": "system", "content": "你是一名中文老师。"},
            {"role": "user", "content": [{"type": "text", "text": "“画蛇添足”是什么意思？"}, {"type": "text", "text": "请举例。"}]},
            {"role": "assistant", "content": "比喻做多余的事，反而不恰当。"},
        ]
    }
    assert to_conversation(row) == (
        {
            "conversations": [human("“画蛇添足”是什么意思？\n请举例。"), assistant("比喻做多余的事，反而不恰当。")],
            "system": "你是一名中文老师。",
        },
        "openai_messages",
    )


def test_openai_developer_role_is_a_system_prompt():
    row = {"messages": [msg("developer", "只用中文回答。"), msg("User", "hi"), msg("assistant", "你好")]}
    conv, _ = to_conversation(row)
    assert conv == {"conversations": [human("hi"), assistant("你好")], "system": "只用中文回答。"}


def test_conversion_does_not_modify_the_input_row():
    row = {"instruction": "你好", "input": None, "output": "你好！", "history": [["在吗", "在"]]}
    before = copy.deepcopy(row)
    to_conversation(row)
    assert row == before


# -------------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"instruction": "a", "input": "", "output": "b"}, "belle_instruction"),
        ({"instruction": "a", "output": "b", "history": None}, "belle_instruction"),
        ({"instruction": "a", "output": "b", "history": []}, "belle_instruction"),
        ({"instruction": "a", "output": "b", "history": [["q", "r"]]}, "alpaca"),
        # A malformed history is still alpaca, so that conversion reports it instead of dropping it.
        ({"instruction": "a", "output": "b", "history": "q"}, "alpaca"),
        ({"input": "a", "target": "b"}, "belle_hf"),
        ({"conversations": [human("a"), assistant("b")]}, "belle_conversations"),
        (
            {"conversations": [{"from": "HUMAN", "value": "a"}, {"from": "Assistant", "value": "b"}]},
            "belle_conversations",
        ),
        ({"conversations": [human("a"), {"from": "gpt", "value": "b"}]}, "sharegpt"),
        ({"conversations": [{"from": "system", "value": "s"}, human("a"), assistant("b")]}, "sharegpt"),
        ({"conversations": [{"from": "robot", "value": "a"}]}, "sharegpt"),
        ({"conversations": []}, "belle_conversations"),
        ({"messages": [{"role": "user", "content": "a"}]}, "openai_messages"),
    ],
)
def test_detect_format(row, expected):
    assert detect_format(row) == expected


def test_detect_format_lists_the_keys_it_saw_when_nothing_matches():
    with pytest.raises(RowError) as info:
        detect_format({"prompt": "你好", "response": "你好！"})
    assert info.value.message.startswith("row matches no known format: expected one of ")
    assert info.value.message.endswith('found keys ["prompt", "response"]')
    assert info.value.field is None


def test_input_output_without_instruction_matches_no_format():
    with pytest.raises(RowError) as info:
        to_conversation({"input": "问题", "output": "答案"})
    assert 'found keys ["input", "output"]' in info.value.message


def test_detect_format_refuses_a_row_with_two_formats_keys():
    row = {"instruction": "a", "output": "b", "conversations": [human("a"), assistant("b")]}
    assert_row_error(
        row,
        'row matches more than one format: found keys "instruction" and "conversations"; '
        'set "format" in the import spec to choose one',
        None,
    )


def test_an_explicit_format_resolves_a_two_format_row():
    row = {"instruction": "甲", "output": "乙", "conversations": [human("丙"), assistant("丁")]}
    assert to_conversation(row, "belle_conversations") == (
        {"conversations": [human("丙"), assistant("丁")]},
        "belle_conversations",
    )
    assert to_conversation(row, "belle_instruction")[0] == {"conversations": [human("甲"), assistant("乙")]}


# ----------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("row", "found"), [([1, 2], "array"), ("text", "string"), (None, "null"), (3, "number")])
def test_a_row_that_is_not_an_object(row, found):
    assert_row_error(row, f"expected a JSON object per row, found {found}", None)


@pytest.mark.parametrize(
    ("row", "message", "field"),
    [
        ({"instruction": "你好"}, 'missing required key "output"', "output"),
        ({"instruction": "你好", "output": 42}, "expected a string, found number", "output"),
        ({"instruction": "你好", "output": ["a"]}, "expected a string, found array", "output"),
        ({"instruction": "你好", "output": None}, "expected a string, found null", "output"),
        ({"instruction": "你好", "input": 3, "output": "好"}, "expected a string, found number", "input"),
        ({"instruction": True, "output": "好"}, "expected a string, found boolean", "instruction"),
        ({"instruction": "", "output": "好"}, "expected non-empty text, found an empty string", "instruction"),
        # An empty instruction is an error even when "input" has text: the task is missing.
        (
            {"instruction": " \n", "input": "今天天气很好", "output": "好"},
            "expected non-empty text, found only whitespace",
            "instruction",
        ),
        ({"instruction": "你好", "output": "  "}, "expected non-empty text, found only whitespace", "output"),
    ],
)
def test_instruction_row_errors(row, message, field):
    assert_row_error(row, message, field)


@pytest.mark.parametrize(
    ("history", "message", "field"),
    [
        ("q", "expected an array of [query, response] pairs, found string", "history"),
        (
            [["q", "r"], ["只有问题"]],
            "expected a [query, response] pair of strings, found an array of 1 items",
            "history[1]",
        ),
        ([["q", "r", "x"]], "expected a [query, response] pair of strings, found an array of 3 items", "history[0]"),
        ([{"q": "r"}], "expected a [query, response] pair of strings, found object", "history[0]"),
        ([["q", 5]], "expected a [query, response] pair of strings, found number", "history[0][1]"),
        ([["", "r"]], "expected non-empty text, found an empty string", "history[0][0]"),
    ],
)
def test_alpaca_history_errors(history, message, field):
    row = {"instruction": "继续", "output": "好的", "history": history}
    assert_row_error(row, message, field)


def test_belle_instruction_given_with_history_points_to_alpaca():
    row = {"instruction": "继续", "output": "好的", "history": [["a", "b"], ["c", "d"]]}
    assert_row_error(
        row,
        'format "belle_instruction" has no history, found 2 earlier turn(s); use format "alpaca"',
        "history",
        fmt="belle_instruction",
    )


@pytest.mark.parametrize(
    ("row", "message", "field"),
    [
        ({"target": "答"}, 'missing required key "input"', "input"),
        ({"input": "问", "target": 1.5}, "expected a string, found number", "target"),
        ({"input": "问", "target": ""}, "expected non-empty text, found an empty string", "target"),
        (
            {"input": "Human: \n\nAssistant: ", "target": "答"},
            'expected a question between the "Human:" and "Assistant:" markers, found none',
            "input",
        ),
    ],
)
def test_belle_hf_errors(row, message, field):
    assert_row_error(row, message, field)


@pytest.mark.parametrize(
    ("conversations", "message", "field"),
    [
        ("你好", "expected an array of turns, found string", "conversations"),
        ([], "expected a human turn followed by an assistant reply, found no turns", "conversations"),
        ([human("a"), "b"], 'expected an object with "from" and "value", found string', "conversations[1]"),
        ([human("a"), {"value": "b"}], 'missing required key "from"', "conversations[1].from"),
        ([human("a"), {"from": "assistant"}], 'missing required key "value"', "conversations[1].value"),
        ([human("a"), {"from": "assistant", "value": None}], "expected a string, found null", "conversations[1].value"),
        ([human("a"), {"from": 1, "value": "b"}], "expected a string, found number", "conversations[1].from"),
        (
            [human("a"), assistant("b"), human("c"), assistant(" \t")],
            "expected non-empty text, found only whitespace",
            "conversations[3].value",
        ),
        (
            [assistant("你好"), human("嗯")],
            "a conversation must start with a human turn, found assistant",
            "conversations[0].from",
        ),
        (
            [human("a"), assistant("b"), assistant("c")],
            "turns must alternate: expected human after assistant, found assistant",
            "conversations[2].from",
        ),
        (
            [human("a"), human("b"), assistant("c")],
            "turns must alternate: expected assistant after human, found human",
            "conversations[1].from",
        ),
        (
            [human("a"), assistant("b"), human("还有问题吗？")],
            "last turn is from human; a training sample must end with an assistant reply",
            "conversations[2].from",
        ),
        (
            [human("只有问题")],
            "last turn is from human; a training sample must end with an assistant reply",
            "conversations[0].from",
        ),
    ],
)
def test_belle_conversations_errors(conversations, message, field):
    assert_row_error({"conversations": conversations}, message, field)


def test_belle_conversations_given_rejects_sharegpt_roles():
    row = {"conversations": [human("a"), {"from": "gpt", "value": "b"}]}
    assert_row_error(
        row,
        'expected one of "human", "assistant" (case-insensitive), found "gpt"',
        "conversations[1].from",
        fmt="belle_conversations",
    )


def test_sharegpt_unknown_from():
    row = {"conversations": [{"from": "human", "value": "a"}, {"from": "robot", "value": "b"}]}
    assert_row_error(
        row,
        'expected one of "human", "user", "assistant", "gpt", "chatgpt", "bing", "bard", "model", "system" '
        '(case-insensitive), found "robot"',
        "conversations[1].from",
    )


def test_sharegpt_system_turn_after_the_first_is_an_error():
    row = {"conversations": [human("a"), {"from": "system", "value": "s"}, {"from": "gpt", "value": "b"}]}
    assert_row_error(row, "a system turn is only allowed first, found one at position 1", "conversations[1].from")


def test_sharegpt_with_only_a_system_turn_has_no_turns():
    row = {"conversations": [{"from": "system", "value": "你是助手"}]}
    assert_row_error(row, "expected a human turn followed by an assistant reply, found no turns", "conversations")


@pytest.mark.parametrize(
    ("messages", "message", "field"),
    [
        (None, "expected an array of turns, found null", "messages"),
        (
            [msg("tool", "x")],
            'expected one of "user", "assistant", "system", "developer" (case-insensitive), found "tool"',
            "messages[0].role",
        ),
        ([{"role": "user"}], 'missing required key "content"', "messages[0].content"),
        (
            [msg("user", "a"), msg("assistant", None)],
            "expected a string or an array of content parts, found null",
            "messages[1].content",
        ),
        (
            [msg("user", [{"type": "text", "text": "看图"}, {"type": "image_url", "image_url": {"url": "x"}}])],
            'only "text" content parts are supported, found "image_url"',
            "messages[0].content[1].type",
        ),
        (
            [msg("user", [{"text": "a"}])],
            'only "text" content parts are supported, found null',
            "messages[0].content[0].type",
        ),
        (
            [msg("user", ["a"])],
            'expected a content part object with "type", found string',
            "messages[0].content[0]",
        ),
        (
            [msg("user", [{"type": "text", "text": 7}])],
            "expected a string, found number",
            "messages[0].content[0].text",
        ),
        (
            [msg("user", []), msg("assistant", "b")],
            "expected non-empty text, found an empty string",
            "messages[0].content",
        ),
        (
            [msg("user", "a"), msg("system", "s"), msg("assistant", "b")],
            "a system turn is only allowed first, found one at position 1",
            "messages[1].role",
        ),
        (
            [msg("system", "s"), msg("system", "t"), msg("user", "a")],
            "a system turn is only allowed first, found one at position 1",
            "messages[1].role",
        ),
        (
            [msg("user", "a"), msg("assistant", "b"), msg("user", "c")],
            "last turn is from human; a training sample must end with an assistant reply",
            "messages[2].role",
        ),
    ],
)
def test_openai_messages_errors(messages, message, field):
    assert_row_error({"messages": messages}, message, field)


@pytest.mark.parametrize(
    ("fmt", "row", "marker"),
    [
        ("sharegpt", {"messages": []}, "conversations"),
        ("openai_messages", {"conversations": []}, "messages"),
        ("belle_hf", {"instruction": "a", "output": "b"}, "target"),
        ("alpaca", {"input": "a", "target": "b"}, "instruction"),
    ],
)
def test_explicit_format_that_does_not_match_the_row(fmt, row, marker):
    keys = ", ".join(f'"{key}"' for key in row)
    message = f'row does not match format "{fmt}": expected key "{marker}", found keys [{keys}]'
    assert_row_error(row, message, marker, fmt)


def test_unknown_format_name_is_a_caller_error_not_a_row_error():
    with pytest.raises(ValueError, match="unknown format 'csv'") as info:
        to_conversation({"instruction": "a", "output": "b"}, "csv")
    assert not isinstance(info.value, RowError)


def test_found_values_are_shortened_in_messages():
    row = {"conversations": [{"from": "x" * 500, "value": "a"}]}
    with pytest.raises(RowError) as info:
        to_conversation(row)
    assert info.value.message.endswith('found "' + "x" * 36 + "...")


def test_row_error_str_includes_the_field():
    error = RowError("expected a string, found number", "output")
    assert str(error) == "output: expected a string, found number"
    assert str(RowError("row matches no known format")) == "row matches no known format"
    assert isinstance(error, ValueError)
