"""Unit tests for belle_datagen.blocks: prompt rendering and parsing of teacher replies."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from belle_datagen.blocks import (
    Task,
    next_block_opener,
    parse_dialogue_reply,
    parse_self_instruct_reply,
    render_dialogue_prompt,
    render_self_instruct_prompt,
)

CODE = '```python\ndef add(a, b):\n    """Sum."""\n    return a + b\n```'

ZH_EXAMPLES = [
    Task("写一首关于春天的短诗", "", "春风拂面来，\n桃花映水开。"),
    Task("把下面的句子翻译成英文", "我喜欢读书。", "I like reading."),
    Task("用Python写一个两数相加的函数", "", CODE),
]
EN_EXAMPLES = [
    Task("Give three tips for staying healthy.", "", "1. Eat well.\n2. Sleep.\n3. Exercise."),
    Task("Translate the sentence into French.", "I like books.", "J'aime les livres."),
    Task("Write a function that adds two numbers.", "", CODE),
]
ZH_TEMPLATE = "你需要想出{num_tasks}个不同的任务。{这对花括号保持原样}\n{examples}"
EN_TEMPLATE = "Come up with a list of {num_tasks} tasks. {keep me}\n{examples}"


def parse(text: str, *, first_index: int = 4, language: str = "zh", truncated: bool = False,
          completion: bool = False):
    return parse_self_instruct_reply(
        text, first_index=first_index, language=language, truncated=truncated,
        completion=completion,
    )


# --------------------------------------------------------------------------------- rendering


def test_render_zh_prompt_has_the_exact_block_format():
    prompt = render_self_instruct_prompt(ZH_TEMPLATE, ZH_EXAMPLES[:2], num_tasks=10, language="zh")
    assert prompt == (
        "你需要想出10个不同的任务。{这对花括号保持原样}\n"
        "###\n1. 指令: 写一首关于春天的短诗\n1. 输入:\n<无输入>\n1. 输出:\n春风拂面来，\n桃花映水开。\n"
        "###\n2. 指令: 把下面的句子翻译成英文\n2. 输入:\n我喜欢读书。\n2. 输出:\nI like reading.\n"
        "###\n3. 指令:"
    )


def test_render_en_uses_english_labels_and_noinput():
    prompt = render_self_instruct_prompt(EN_TEMPLATE, EN_EXAMPLES, num_tasks=20, language="en")
    assert prompt.startswith("Come up with a list of 20 tasks. {keep me}\n###\n1. Instruction: ")
    assert "1. Input:\n<noinput>\n1. Output:\n1. Eat well." in prompt
    assert prompt.endswith("###\n4. Instruction:")


@pytest.mark.parametrize(
    ("template", "examples", "language"),
    [(ZH_TEMPLATE, ZH_EXAMPLES, "zh"), (EN_TEMPLATE, EN_EXAMPLES, "en")],
)
def test_rendered_examples_parse_back_to_the_same_tasks(template, examples, language):
    prompt = render_self_instruct_prompt(template, examples, num_tasks=10, language=language)
    parsed = parse(prompt, language=language)
    assert parsed.tasks == examples
    # The trailing "4. 指令:" opener is an empty block: the only thing dropped.
    assert parsed.dropped == Counter({"incomplete": 1})


def test_render_replaces_in_one_pass_so_example_text_is_not_rendered_again():
    examples = [Task("解释占位符{num_tasks}的含义", "", "它会被替换成任务数。")]
    prompt = render_self_instruct_prompt("{num_tasks}\n{examples}", examples, num_tasks=5,
                                         language="zh")
    assert prompt.startswith("5\n")
    assert "1. 指令: 解释占位符{num_tasks}的含义" in prompt


def test_render_rejects_bad_arguments():
    with pytest.raises(ValueError, match="examples"):
        render_self_instruct_prompt("{num_tasks}个任务", ZH_EXAMPLES, num_tasks=10, language="zh")
    with pytest.raises(ValueError, match="num_tasks"):
        render_self_instruct_prompt(ZH_TEMPLATE, ZH_EXAMPLES, num_tasks=3, language="zh")
    with pytest.raises(ValueError, match="language"):
        render_self_instruct_prompt(ZH_TEMPLATE, ZH_EXAMPLES, num_tasks=10, language="fr")


def test_next_block_opener():
    assert next_block_opener(5, "zh") == "5. 指令:"
    assert next_block_opener(12, "en") == "12. Instruction:"


def test_render_dialogue_prompt():
    template = "围绕“{topic}”写一段{turns}轮的对话，{其他}不变。"
    assert render_dialogue_prompt(template, topic="学习{turns}", turns=3) == (
        "围绕“学习{turns}”写一段3轮的对话，{其他}不变。"
    )
    with pytest.raises(ValueError, match="topic"):
        render_dialogue_prompt("{turns} turns", topic="x", turns=2)
    with pytest.raises(ValueError):
        render_dialogue_prompt(template, topic="x", turns=0)


# --------------------------------------------------------------------- self-instruct parsing


CHAT_REPLY = """###
4. 指令: 列出三种常见的水果
4. 输入:
<无输入>
4. 输出:
苹果、香蕉、橙子
###
5. 指令：判断下面的句子是否通顺
5. 输入：
他昨天去了学校。
5. 输出：
通顺。
###
6. 指令: 写一个计算阶乘的Python函数
6. 输入:
无
6. 输出:
```python
def fact(n):
    return 1 if n < 2 else n * fact(n - 1)
```
"""


def test_chat_reply_with_ascii_and_full_width_colons():
    parsed = parse(CHAT_REPLY)
    assert parsed.tasks == [
        Task("列出三种常见的水果", "", "苹果、香蕉、橙子"),
        Task("判断下面的句子是否通顺", "他昨天去了学校。", "通顺。"),
        Task(
            "写一个计算阶乘的Python函数",
            "",
            "```python\ndef fact(n):\n    return 1 if n < 2 else n * fact(n - 1)\n```",
        ),
    ]
    assert parsed.dropped == Counter()


def test_values_inline_or_on_the_next_lines_are_the_same():
    inline = "4. 指令: 说出中国的首都\n4. 输入: <无输入>\n4. 输出: 北京"
    next_line = "4. 指令:\n说出中国的首都\n4. 输入:\n<无输入>\n4. 输出:\n\n北京\n\n"
    expected = [Task("说出中国的首都", "", "北京")]
    assert parse(inline).tasks == expected
    assert parse(next_line).tasks == expected


@pytest.mark.parametrize(
    "marker",
    ["<无输入>", "＜无输入＞", "无输入", "<无输入>。", "<noinput>", "<no input>", "<NoInput>", "无"],
)
def test_no_input_markers_mean_empty_input(marker):
    parsed = parse(f"4. 指令: 说出一种颜色\n4. 输入:\n{marker}\n4. 输出:\n红色")
    assert parsed.tasks == [Task("说出一种颜色", "", "红色")]


def test_real_input_mentioning_no_input_is_kept():
    parsed = parse("4. 指令: 解释这个词\n4. 输入:\n无输入法\n4. 输出:\n一种没有输入法的状态")
    assert parsed.tasks[0].input == "无输入法"


def test_full_width_digits_and_periods_and_markdown_decoration():
    reply = "１．指令：说出一种动物\n１．输入：<无输入>\n１．输出：猫\n**2. 指令:** 说出一种花\n2. 输入: 无\n2. 输出: 玫瑰"
    assert parse(reply).tasks == [Task("说出一种动物", "", "猫"), Task("说出一种花", "", "玫瑰")]


def test_reply_missing_separators_still_splits_on_numbered_instruction():
    reply = CHAT_REPLY.replace("###\n", "")
    parsed = parse(reply)
    assert [task.instruction for task in parsed.tasks] == [
        "列出三种常见的水果", "判断下面的句子是否通顺", "写一个计算阶乘的Python函数",
    ]
    assert parsed.dropped == Counter()


def test_separator_with_spaces_and_preamble_and_trailing_chatter_ignored():
    reply = "好的，以下是新的任务：\n  ###  \n4. 指令: 说出一种颜色\n4. 输入: 无\n4. 输出: 蓝色\n ### \n希望对你有帮助！"
    parsed = parse(reply)
    assert parsed.tasks == [Task("说出一种颜色", "", "蓝色")]
    assert parsed.dropped == Counter()


def test_cut_off_reply_drops_only_its_last_block():
    reply = CHAT_REPLY + "###\n7. 指令: 写一篇关于环保的短文\n7. 输入:\n<无输入>\n7. 输出:\n环境保护是"
    parsed = parse(reply, truncated=True)
    assert len(parsed.tasks) == 3
    assert parsed.dropped == Counter({"truncated": 1})
    # The same text without the cut flag keeps all four blocks.
    assert len(parse(reply).tasks) == 4


def test_cut_off_reply_whose_last_block_was_closed_keeps_it():
    parsed = parse(CHAT_REPLY + "###\n", truncated=True)
    assert len(parsed.tasks) == 3
    assert parsed.dropped == Counter()


def test_incomplete_blocks_are_counted():
    reply = (
        "4. 指令: 没有输出的任务\n4. 输入: 无\n"
        "###\n5. 指令: 没有输入字段的任务\n5. 输出: 有输出\n"
        "###\n6. 指令:\n6. 输入: 无\n6. 输出: 指令是空的\n"
        "###\n7. 指令: 输出是空的\n7. 输入: 无\n7. 输出:\n"
        "###\n8. 指令: 完整的任务\n8. 输入: 无\n8. 输出: 好"
    )
    parsed = parse(reply)
    assert parsed.tasks == [Task("完整的任务", "", "好")]
    assert parsed.dropped == Counter({"incomplete": 4})


def test_completion_mode_prepends_the_opener():
    continuation = (
        " 列出两种乐器\n5. 输入:\n<无输入>\n5. 输出:\n钢琴、小提琴\n"
        "###\n6. 指令: 说出一个季节\n6. 输入:\n无\n6. 输出:\n夏天"
    )
    parsed = parse(continuation, first_index=5, completion=True)
    assert parsed.tasks == [Task("列出两种乐器", "", "钢琴、小提琴"), Task("说出一个季节", "", "夏天")]
    cut = parse(continuation, first_index=5, completion=True, truncated=True)
    assert cut.tasks == [Task("列出两种乐器", "", "钢琴、小提琴")]
    assert cut.dropped == Counter({"truncated": 1})


def test_bare_labels_without_numbers():
    reply = "指令: 说出一种水果\n输入: 无\n输出: 苹果\n指令: 说出一种蔬菜\n输入: <无输入>\n输出: 白菜"
    assert parse(reply).tasks == [Task("说出一种水果", "", "苹果"), Task("说出一种蔬菜", "", "白菜")]


def test_unnumbered_labels_inside_an_output_stay_text():
    output = "def double(x):\n    return 2 * x\n\n输入: 3\n输出: 6"
    reply = (
        f"4. 指令: 写一个把数字翻倍的函数并举例\n4. 输入: 无\n4. 输出:\n{output}\n"
        "###\n5. 指令: 说出一个数字\n5. 输入: 无\n5. 输出: 七"
    )
    parsed = parse(reply)
    assert parsed.tasks[0].output == output
    assert len(parsed.tasks) == 2


def test_unnumbered_label_out_of_order_is_text_not_a_field():
    # The block skipped its input label; a later "输入:" inside the output must not become one.
    reply = "4. 指令: 举例说明函数\n4. 输出:\n例如：\n输入: 3\n结果是6"
    parsed = parse(reply)
    assert parsed.tasks == []
    assert parsed.dropped == Counter({"incomplete": 1})


def test_english_labels_case_insensitive():
    reply = (
        "###\n4. Instruction: Name a primary color.\n4. Input:\n<noinput>\n4. Output:\nRed\n"
        "###\n5. instruction: Name a planet.\n5. INPUT: <No Input>\n5. output: Mars"
    )
    parsed = parse(reply, language="en")
    assert parsed.tasks == [
        Task("Name a primary color.", "", "Red"),
        Task("Name a planet.", "", "Mars"),
    ]
    # Chinese labels mean nothing to an English parse.
    assert parse(CHAT_REPLY, language="en").dropped == Counter({"unparseable": 1})


def test_windows_newlines():
    parsed = parse("4. 指令: 说出一种颜色\r\n4. 输入: 无\r\n4. 输出:\r\n红\r\n绿")
    assert parsed.tasks == [Task("说出一种颜色", "", "红\n绿")]


@pytest.mark.parametrize("text", ["", "抱歉，我无法完成这个请求。", "###\n###", None])
def test_reply_without_blocks_is_unparseable(text):
    parsed = parse(text)
    assert parsed.tasks == []
    assert parsed.dropped == Counter({"unparseable": 1})


def test_garbage_never_raises():
    """Random label fragments: never an exception, and whatever comes out is well formed."""
    rng = random.Random(1234)
    tasks_seen = dialogues_seen = 0
    alphabet = list("###\n\n:：.．１2 指令输入输出<无输入>HumanAssistant`{}*-\r\t abc中文")
    alphabet += ["4. 指令:", "\n4. 输入:", "\n4. 输出:", "###\n", "\nHuman: ", "\nAssistant："]
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        for completion in (False, True):
            for truncated in (False, True):
                parsed = parse(text, completion=completion, truncated=truncated)
                assert all(task.instruction and task.output for task in parsed.tasks)
                assert all(count > 0 for count in parsed.dropped.values())
                tasks_seen += len(parsed.tasks)
        turns, reason = parse_dialogue_reply(text, truncated=rng.random() < 0.5)
        assert (turns is None) != (reason is None)
        if turns is not None:
            speakers = [turn["from"] for turn in turns]
            assert speakers == ["human", "assistant"] * (len(turns) // 2) and len(turns) % 2 == 0
            assert all(turn["value"] for turn in turns)
            dialogues_seen += 1
    # The fragments are rich enough that the checks above ran on real parses, not only drops.
    assert tasks_seen > 100 and dialogues_seen > 100


# -------------------------------------------------------------------------- dialogue parsing


def test_dialogue_parse_with_preamble_multiline_and_full_width_colon():
    reply = (
        "以下是对话：\nHuman: 你好，\n能推荐一本书吗？\n"
        "Assistant：推荐《活着》。\n它讲述了\n一个人的一生。\nhuman: 谢谢\nassistant: 不客气！"
    )
    turns, reason = parse_dialogue_reply(reply, truncated=False)
    assert reason is None
    assert turns == [
        {"from": "human", "value": "你好，\n能推荐一本书吗？"},
        {"from": "assistant", "value": "推荐《活着》。\n它讲述了\n一个人的一生。"},
        {"from": "human", "value": "谢谢"},
        {"from": "assistant", "value": "不客气！"},
    ]


def test_dialogue_merges_consecutive_same_speaker_turns():
    turns, _ = parse_dialogue_reply("Human: 第一句\nHuman: 第二句\nAssistant: 回答", truncated=False)
    assert turns == [
        {"from": "human", "value": "第一句\n第二句"},
        {"from": "assistant", "value": "回答"},
    ]


def test_truncated_dialogue_drops_the_cut_answer_and_its_question():
    reply = "Human: 问题一\nAssistant: 回答一\nHuman: 问题二\nAssistant: 回答二说到一半"
    turns, reason = parse_dialogue_reply(reply, truncated=True)
    assert reason is None
    assert [turn["value"] for turn in turns] == ["问题一", "回答一"]
    full, _ = parse_dialogue_reply(reply, truncated=False)
    assert len(full) == 4


def test_dialogue_ending_on_an_unanswered_question_loses_it():
    turns, _ = parse_dialogue_reply("Human: 问\nAssistant: 答\nHuman: 还有吗？", truncated=False)
    assert [turn["from"] for turn in turns] == ["human", "assistant"]


@pytest.mark.parametrize(
    ("reply", "truncated"),
    [
        ("Assistant: 只有回答", False),
        ("Human: 只有问题", False),
        ("Human: 问题\nAssistant: 被截断的回答", True),
        ("Human:\nAssistant: 问题是空的", False),
        ("随便一段文字", False),
        ("", True),
    ],
)
def test_unusable_dialogues(reply, truncated):
    assert parse_dialogue_reply(reply, truncated=truncated) == (None, "unparseable_dialogue")
