"""Deliberately bad self-instruct blocks (`--noise`), of the kinds a real teacher produces and the
generator's filters must catch: a blacklisted word (图片, 链接, picture, file...), an instruction that
addresses the model as ChatGPT (or an answer that speaks as an AI model), a Chinese instruction with
an English answer, a too-short instruction, a near-copy of an earlier task, and for English Alpaca's
"Write a program" instructions. Each bad block is otherwise well formed, so only its filter drops it.
"""

from __future__ import annotations

import random
from typing import Sequence

from belle_teacher.tasks import Task, solve

# kind -> language -> [(instruction, input, output)]
SAMPLES: dict[str, dict[str, list[tuple[str, str, str]]]] = {
    "blacklisted_word": {
        "zh": [("根据这张图片，描述画面中的人物正在做什么。", "", "画面中有两个孩子在草地上放风筝，看起来非常开心。"),
               ("打开下面的链接，总结网页的主要内容。", "https://example.com/news", "这篇网页介绍了本市新开放的一座公园及其开放时间。"),
               ("把这段视频里的对话整理成文字稿。", "", "甲：你好，今天天气不错。乙：是啊，我们去公园走走吧。"),
               ("读取附件里的文件，列出其中出现的所有人名。", "", "张伟、李娜、王强。")],
        "en": [("Describe what is happening in the picture below.", "", "Two children are flying a kite in a green park."),
               ("Draw a simple diagram of the water cycle.", "", "Water evaporates, forms clouds, falls as rain and flows back to the sea."),
               ("Summarize the video in three sentences.", "", "A chef cooks pasta. He adds tomatoes. The family enjoys dinner."),
               ("Open the file and list every name in it.", "", "Alice, Bob and Carol.")],
    },
    "addresses_model": {
        "zh": [("ChatGPT，请用一句话介绍你自己。", "", "我是ChatGPT，一个由OpenAI训练的大型语言模型。"),
               ("告诉我现在北京的实时天气。", "", "作为一个AI语言模型，我无法获取实时的天气信息。"),
               ("你还记得我们上次聊了什么吗？", "", "作为一个人工智能，我无法记住之前的对话内容。")],
        "en": [("ChatGPT, please introduce yourself in one sentence.", "", "I am ChatGPT, a large language model trained by OpenAI."),
               ("Tell me the current price of gold in London.", "", "As an AI language model, I do not have access to real-time market data."),
               ("Do you remember what we talked about yesterday?", "", "As an AI language model, I cannot remember earlier conversations.")],
    },
    "language_mismatch": {
        "zh": [("请简单介绍一下秋天的特点。", "", "Autumn is cool and dry, and the leaves turn yellow and red before they fall."),
               ("用两句话说说为什么要多喝水。", "", "Water keeps the body working well. It also helps you stay focused and energetic."),
               ("推荐三种适合初学者的运动。", "", "Walking, swimming and cycling are all easy for beginners to start with.")],
    },
    "too_short": {
        "zh": [("排序", "5, 2, 8", "2, 5, 8"), ("写诗", "", "床前明月光，疑是地上霜。"), ("倒写", "春天", "天春")],
        "en": [("Sort numbers.", "5, 2, 8", "2, 5, 8"), ("Reverse it.", "stone", "enots"), ("Translate this.", "你好", "Hello")],
    },
    "write_a_program": {
        "en": [("Write a program that prints the first ten square numbers.", "", "for i in range(1, 11):\n    print(i * i)"),
               ("Write a program to check whether a number is prime.", "",
                "def is_prime(n):\n    return n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))")],
    },
}


def near_copy(original: Task, language: str) -> Task:
    """`original` with a one-token change: ROUGE-L stays far above 0.7, so de-duplication must drop it."""
    instruction = original.instruction
    if language == "zh":
        instruction = instruction[1:] if instruction.startswith("请") else "请" + instruction
    else:
        instruction = "Please " + instruction[:1].lower() + instruction[1:]
    output = solve(instruction, original.input) or original.output
    return Task("noise:near_copy", instruction, original.input, output)


def bad_task(rng: random.Random, language: str, earlier: Sequence[Task]) -> Task:
    """One bad task of a random kind (a near-copy only when there is something earlier to copy)."""
    kinds = [k for k, by_language in SAMPLES.items() if language in by_language]
    if earlier:
        kinds.append("near_copy")
    kind = rng.choice(kinds)
    if kind == "near_copy":
        return near_copy(rng.choice(list(earlier)), language)
    instruction, input, output = rng.choice(SAMPLES[kind][language])
    return Task(f"noise:{kind}", instruction, input, output)
