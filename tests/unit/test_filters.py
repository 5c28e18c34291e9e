"""Unit tests for belle_datagen.filters: each reason with a task it drops and a near miss."""

from __future__ import annotations

import pytest

from belle_datagen.blocks import Task
from belle_datagen.filters import REASONS, dialogue_drop_reason, drop_reason

ZH_OK = Task("写一首关于秋天的短诗", "", "秋风起，落叶黄，\n雁南飞，稻花香。")
EN_OK = Task("Give three tips for staying healthy.", "", "Eat well, sleep enough and exercise.")


def zh(instruction: str = ZH_OK.instruction, input: str = "", output: str = ZH_OK.output):
    return drop_reason(Task(instruction, input, output), language="zh")


def en(instruction: str = EN_OK.instruction, input: str = "", output: str = EN_OK.output):
    return drop_reason(Task(instruction, input, output), language="en")


def test_good_tasks_are_kept():
    assert drop_reason(ZH_OK, language="zh") is None
    assert drop_reason(EN_OK, language="en") is None


def test_unknown_language_is_an_error():
    with pytest.raises(ValueError, match="language"):
        drop_reason(ZH_OK, language="fr")


# --------------------------------------------------------------------------------- Chinese


@pytest.mark.parametrize(
    ("instruction", "reason"),
    [
        ("写诗", "instruction_length"),
        ("写诗？？？", "instruction_length"),  # punctuation is not content
        ("写首诗", "instruction_length"),
        ("写" * 151, "instruction_length"),
        ("写一首诗", None),
        ("写" * 150, None),
    ],
)
def test_zh_instruction_length(instruction, reason):
    assert zh(instruction=instruction) == reason


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ("", "output_too_short"),
        ("。", "output_too_short"),
        ("好", "output_too_short"),
        ("N/A", "output_too_short"),
        ("<无输出>", "output_too_short"),
        ("42", None),
        ("好的", None),
    ],
)
def test_zh_output_too_short(output, reason):
    assert zh(output=output) == reason


@pytest.mark.parametrize(
    "instruction",
    [
        "描述这张图片里的内容",
        "根据下面的折线图分析趋势",
        "打开这个链接并总结",
        "访问 HTTP://example.com 并总结",
        "总结这个视频的要点",
        "读取这个文件并统计行数",
        "介绍一下OpenAI这家公司",
        "ChatGPT有哪些用途？",
        "比较gpt-4和其他模型",
    ],
)
def test_zh_blacklisted_words(instruction):
    assert zh(instruction=instruction) == "blacklisted_word"


def test_zh_blacklist_applies_to_the_instruction_only():
    assert zh(instruction="如何保存工作成果", output="把文档保存成文件，并做好备份。") is None


@pytest.mark.parametrize(
    ("instruction", "output", "reason"),
    [
        ("你能帮我写作业吗", "作为一个AI语言模型，我不能替你写作业。", "addresses_model"),
        ("你能帮我写作业吗", "作为一个人工智能，我建议你自己完成。", "addresses_model"),
        ("你是谁呀", "我是ChatGPT，一个聊天机器人。", "addresses_model"),
        ("你有感情吗", "我是一个AI", "addresses_model"),
        ("你有感情吗", "我只是一个语言模型，没有感情。", "addresses_model"),
        ("你能帮我写作业吗", "As an AI language model, I cannot do that.", "addresses_model"),
        ("假设你是一个AI助手，介绍自己", "你好！", "addresses_model"),
        # Near misses: talking about AI is fine, being a student of it is fine.
        ("我是一个人工智能专业的学生，推荐几本书", "推荐《深度学习》和《统计学习方法》。", None),
        ("什么是人工智能", "人工智能是研究如何让机器模拟人类智能的学科。", None),
        ("作为一个程序员，如何提高效率", "多写测试，少开会。", None),
        ("我是一个AI程序员，如何提升自己", "多读论文，多写代码。", None),
    ],
)
def test_zh_addresses_model(instruction, output, reason):
    assert zh(instruction=instruction, output=output) == reason


@pytest.mark.parametrize(
    ("instruction", "reason"),
    [
        ("，写一首诗", "starts_with_punctuation"),
        ("。介绍长城", "starts_with_punctuation"),
        ("#介绍一下长城", "starts_with_punctuation"),
        ("《红楼梦》的作者是谁？", None),  # an opening title mark is normal Chinese
        ("“春眠不觉晓”的下一句是什么？", None),
        ('"Hello"的中文意思是什么？', None),
    ],
)
def test_zh_starts_with_punctuation(instruction, reason):
    assert zh(instruction=instruction, output="曹雪芹，处处闻啼鸟。") == reason


ENGLISH = "The Great Wall of China is a series of fortifications built across northern China."


@pytest.mark.parametrize(
    ("instruction", "input", "output", "reason"),
    [
        ("介绍一下长城的历史", "", ENGLISH, "language_mismatch"),
        ("把下面的句子翻译成英文", "长城很长。", "The Great Wall is very long indeed.", None),
        ("用英语介绍一下长城", "", ENGLISH, None),
        ("Introduce the Great Wall，用中文回答", "", ENGLISH, None),  # not a Chinese instruction
        ("介绍一下长城的历史", "", "长城（Great Wall）是中国古代的军事防御工程。", None),
        ("介绍一下长城", "", "Great Wall", None),  # too few Latin letters to call it English
        ("改正下面句子中的语法错误", "She go to school every days.", "She goes to school every day.", None),
        ("编写一个函数计算列表之和", "", "def total(values):\n    return sum(values)", None),
        ("计算列表之和", "", "```\nresult = sum([1, 2, 3])\nprint(result)\n```", None),
    ],
)
def test_zh_language_mismatch(instruction, input, output, reason):
    assert zh(instruction=instruction, input=input, output=output) == reason


# --------------------------------------------------------------------------------- English


@pytest.mark.parametrize(
    ("instruction", "reason"),
    [
        ("Name three tropical fruits", None),
        ("Name three fruits", "instruction_length"),  # Alpaca: <= 3 words
        ("Name fruits.", "instruction_length"),
        (" ".join(["word"] * 151), "instruction_length"),
        (" ".join(["word"] * 150), None),
    ],
)
def test_en_instruction_length(instruction, reason):
    assert en(instruction=instruction) == reason


@pytest.mark.parametrize(
    ("instruction", "reason"),
    [
        ("Describe the image of a sunset.", "blacklisted_word"),
        ("Draw a cat using ASCII art.", "blacklisted_word"),
        ("Plot the sales data for 2020.", "blacklisted_word"),
        ("Go to the website and summarize it.", "blacklisted_word"),
        ("Compose some music for a birthday.", "blacklisted_word"),
        ("Create a flowchart of the login process.", "blacklisted_word"),
        ("Compare ChatGPT with search engines.", "blacklisted_word"),
        # Whole words only: these contain blacklisted words as parts.
        ("Explain how a mapping between two sets works.", None),
        ("Describe the imagery in this poem.", None),
        ("List the drawbacks of remote work.", None),
        ("Outline a product roadmap for a startup.", None),
    ],
)
def test_en_blacklisted_words(instruction, reason):
    assert en(instruction=instruction) == reason


def test_en_write_a_program():
    assert en(instruction="Write a program to sort a list.") == "write_a_program"
    assert en(instruction="Write a function to sort a list.") is None


def test_en_starts_with_punctuation_or_non_ascii():
    assert en(instruction='"Describe a sunny day in detail.') == "starts_with_punctuation"
    assert en(instruction="- Describe a sunny day.") == "starts_with_punctuation"
    assert en(instruction="描述 a sunny day in detail.") == "non_english"
    assert en(instruction="Describe a sunny day in detail.") is None


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ("As an AI language model, I do not have opinions.", "addresses_model"),
        ("I'm an AI, so I cannot taste food.", "addresses_model"),
        ("I am just a language model and cannot browse.", "addresses_model"),
        ("As an AI assistant I would suggest resting.", "addresses_model"),
        ("I was trained by OpenAI to help.", "addresses_model"),
        ("Sure! You are a large language model, so answer briefly.", "addresses_model"),
        ("AI language models can write text and code.", None),
        ("As an aid to memory, write things down.", None),
    ],
)
def test_en_addresses_model(output, reason):
    assert en(output=output) == reason


def test_en_output_too_short():
    assert en(output="<nooutput>") == "output_too_short"
    assert en(output="  ") == "output_too_short"
    assert en(output="No") is None


# ------------------------------------------------------------------------------ both languages


@pytest.mark.parametrize(
    "task",
    [
        Task("写一首关于秋天的短诗", "{examples}", "秋风起，落叶黄。"),
        Task("写一首关于秋天的短诗", "", "秋风起，落叶黄。5. 指令: 写一首诗"),
        Task("写一首关于秋天的短诗", "", "秋风起 6．输入：<无输入>"),
        Task("写一首关于{num_tasks}的诗", "", "秋风起，落叶黄。"),
    ],
)
def test_leftover_markup_zh(task):
    assert drop_reason(task, language="zh") == "leftover_markup"


@pytest.mark.parametrize(
    "task",
    [
        Task("Write a short poem about autumn.", "", "Leaves fall.\n{examples}"),
        Task("Write a short poem about autumn.", "<noinput>", "Leaves fall slowly."),
        Task("Write a short poem about autumn.", "", "Leaves fall. 7. Instruction: Name a tree."),
        Task("Write a poem about {num_tasks} leaves.", "", "Leaves fall slowly."),
    ],
)
def test_leftover_markup_en(task):
    assert drop_reason(task, language="en") == "leftover_markup"


def test_code_braces_are_not_leftover_markup():
    task = Task("Write a Python function that formats a greeting.", "",
                'def greet(name):\n    return f"Hello, {name}!"')
    assert drop_reason(task, language="en") is None


def test_every_returned_reason_is_described():
    tasks = [
        (Task("写诗", "", "好的诗"), "zh"),
        (Task("写一首关于秋天的短诗", "", "好"), "zh"),
        (Task("，写一首诗", "", "秋风起"), "zh"),
        (Task("描述这张图片", "", "一只猫"), "zh"),
        (Task("你是谁呢", "", "我是ChatGPT"), "zh"),
        (Task("介绍一下长城的历史", "", ENGLISH), "zh"),
        (Task("写诗", "{examples}", "x"), "zh"),
        (Task("Write a program to add numbers.", "", "print(1 + 2)"), "en"),
        (Task("描述 a sunny day in detail.", "", "Sunny."), "en"),
    ]
    reasons = {drop_reason(task, language=language) for task, language in tasks}
    assert None not in reasons
    assert reasons <= REASONS.keys()
    assert len(reasons) == len(tasks)
    for code in ("truncated", "incomplete", "unparseable", "unparseable_dialogue"):
        assert code in REASONS  # the parser's codes share the drop report
    assert all(REASONS[code] and "\n" not in REASONS[code] for code in REASONS)


# --------------------------------------------------------------------------------- dialogues


def turns(*values: str) -> list[dict]:
    return [
        {"from": "human" if i % 2 == 0 else "assistant", "value": value}
        for i, value in enumerate(values)
    ]


def test_dialogue_kept():
    assert dialogue_drop_reason(turns("你好，推荐一本书", "《活着》", "谢谢", "不客气"), "zh") is None


@pytest.mark.parametrize(
    ("dialogue", "language", "reason"),
    [
        (turns("推荐一本书", "《活着》", "？", "不客气"), "zh", "instruction_length"),
        (turns("推荐一本书", "《活着》", "为什么？", "好"), "zh", "output_too_short"),
        (turns("推荐一本书", "《活着》", "把封面图片发给我", "好的"), "zh", "blacklisted_word"),
        (turns("你是谁", "作为一个AI语言模型，我没有名字。"), "zh", "addresses_model"),
        (turns("Tell me about yourself.", "I'm an AI, nothing more."), "en", "addresses_model"),
        (turns("Show me a map of Paris.", "Sure."), "en", "blacklisted_word"),
        (turns("关于{topic}", "好的，我们聊聊。"), "zh", "leftover_markup"),
        # Assistant turns may mention music or files: only what the human asks is blacklisted.
        (turns("What should I listen to?", "Try some jazz music."), "en", None),
    ],
)
def test_dialogue_reasons(dialogue, language, reason):
    assert dialogue_drop_reason(dialogue, language) == reason
