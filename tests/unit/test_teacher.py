"""The offline teacher: its task family, and the real server process driven by the real `openai` client."""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from belle_teacher import tasks
from belle_teacher.noise import SAMPLES
from belle_teacher.numerals import to_chinese
from belle_teacher.tokens import count_tokens, pieces, truncate
from helpers import rouge_l_f as rouge_l
from teacher import start_teacher

KEY = "sk-teacher-test"
MODEL = "belle-teacher"


# --------------------------------------------------------------------- ROUGE-L (test's own, exact)


def rouge_tokens(text: str) -> list[str]:
    """The project's de-duplication tokens: CJK characters, runs of [a-z0-9], lowercased."""
    return re.findall(r"[\u3400-\u4dbf\u4e00-\u9fff]|[a-z0-9]+", text.lower())


def greedy_keep(texts: list[str], threshold: float = 0.7) -> list[str]:
    kept: list[list[str]] = []
    out = []
    for text in texts:
        tokens = rouge_tokens(text)
        if all(rouge_l(tokens, k) <= threshold for k in kept):
            kept.append(tokens)
            out.append(text)
    return out


# ----------------------------------------------------------------------------- prompt formats


def block(i: int, instruction: str, input: str, output: str, language: str) -> str:
    labels = ("指令", "输入", "输出") if language == "zh" else ("Instruction", "Input", "Output")
    empty = "<无输入>" if language == "zh" else "<noinput>"
    return (f"###\n{i}. {labels[0]}: {instruction}\n{i}. {labels[1]}:\n{input or empty}\n"
            f"{i}. {labels[2]}:\n{output}\n")


def self_instruct_prompt(language: str, num_tasks: int) -> str:
    if language == "zh":
        head = f"请你写出{num_tasks}个各不相同的任务，每个任务包含指令、输入和输出，输入不超过100个字。\n\n下面是{num_tasks}个任务的列表：\n"
        examples = [("写一首关于春天的四行短诗。", "", "春风吹绿柳，燕子绕梁飞。\n桃花映溪水，游人醉不归。"),
                    ("把下面的句子翻译成英文。", "我今天很开心。", "I am very happy today."),
                    ("列出三种常见的水果。", "", "苹果、香蕉、橙子。")]
    else:
        head = f"Please come up with {num_tasks} diverse tasks with an instruction, an input and an output.\n\n" \
               f"Here is the list of {num_tasks} tasks:\n"
        examples = [("Give three tips for staying healthy.", "", "Eat vegetables, sleep well and exercise."),
                    ("Translate the sentence into French.", "Good morning.", "Bonjour."),
                    ("Name the capital of Japan.", "", "Tokyo.")]
    body = "".join(block(i, *example, language) for i, example in enumerate(examples, start=1))
    opener = "4. 指令:" if language == "zh" else "4. Instruction:"
    return head + body + "###\n" + opener


def parse_blocks(text: str, language: str) -> dict[int, tuple[str, str, str]]:
    """The test's own reader of the block format: {number: (instruction, input, output)}."""
    names = ("指令", "输入", "输出") if language == "zh" else ("Instruction", "Input", "Output")
    label = re.compile(rf"^(\d+)\. ({'|'.join(names)}):[ ]?", re.MULTILINE)
    marks = list(label.finditer(text))
    fields: dict[int, dict[str, str]] = {}
    for k, mark in enumerate(marks):
        end = marks[k + 1].start() if k + 1 < len(marks) else len(text)
        value = re.sub(r"\n###\s*$", "", text[mark.end():end]).strip()
        fields.setdefault(int(mark.group(1)), {})[mark.group(2)] = value
    out = {}
    for number, f in fields.items():
        input = f[names[1]]
        out[number] = (f[names[0]], "" if input in ("<无输入>", "<noinput>") else input, f[names[2]])
    return out


def judge_prompt(language: str, question: str, reference: str, answer: str) -> str:
    if language == "zh":
        return ("你是一名严格的阅卷老师。请对照标准回答判断模型回答是否正确，正确给1分，错误给0分。\n"
                f"问题: {question}\n标准回答：{reference}\n模型回答: {answer}\n"
                "请先输出一行“得分: <0到1之间的数>”，再用一句话说明理由。")
    return ("You are a strict grader. Compare the model answer with the reference answer.\n"
            f"Question: {question}\nReference answer: {reference}\nModel answer: {answer}\n"
            "Reply with a line `Score: <number between 0 and 1>` and one sentence of reasoning.")


def score_of(reply: str, language: str) -> int:
    label = "得分" if language == "zh" else "Score"
    lines = [line for line in reply.splitlines() if re.fullmatch(rf"{label}: [01]", line)]
    assert len(lines) == 1, reply
    return int(lines[0][-1])


# ----------------------------------------------------------------------------- the task family


@pytest.mark.parametrize("number, text", [(0, "零"), (15, "十五"), (20, "二十"), (101, "一百零一"), (110, "一百一十"),
                                          (305, "三百零五"), (1005, "一千零五"), (1050, "一千零五十"), (10010, "一万零一十"),
                                          (150000, "十五万"), (100001000, "一亿零一千"), (-42, "负四十二")])
def test_chinese_numerals(number, text):
    assert to_chinese(number) == text


def test_formal_numerals_are_daxie():
    assert to_chinese(305, formal=True) == "叁佰零伍"
    assert tasks.solve("把305写成中文大写数字") == "叁佰零伍"


@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_generated_task_is_solved_back_exactly(language):
    rng = random.Random(7)
    generated = [tasks.generate_task(rng, language) for _ in range(2000)]
    assert {t.kind for t in generated} == set(tasks.KINDS)
    wrong = [t for t in generated if tasks.solve(t.instruction, t.input) != t.output]
    assert wrong == []
    assert all(tasks.kind_of(t.instruction, t.input) == t.kind for t in generated)
    # The generator's filters drop outputs under two letters/digits and short instructions.
    assert all(len(re.findall(r"\w", t.output)) >= 2 for t in generated)
    if language == "en":
        assert min(len(t.instruction.split()) for t in generated) > 3
    else:
        assert min(len(t.instruction) for t in generated) >= 6


@pytest.mark.parametrize("instruction, input, answer", [
    ("把305写成中文数字", "", "三百零五"),
    ("请把下面的数字写成中文数字。", "10010", "一万零一十"),
    ("Write 1050 in Chinese numerals.", "", "一千零五十"),
    ("把“春眠不觉晓”倒过来写", "", "晓觉不眠春"),
    ("Reverse the string \"hello world\".", "", "dlrow olleh"),
    ("把 5、3、9、1 从小到大排列", "", "1, 3, 5, 9"),
    ("Sort the numbers below in descending order.", "4, 10, 7", "10, 7, 4"),
    ("计算 12 × 3 + 5", "", "41"),
    ("What is 7 - 2 * 10?", "", "-13"),
    ("“今天天气很好”一共有多少个字？", "", "6"),
    ("How many words are in \"the quick brown fox\"?", "", "4"),
    ("把英文“Hello World”全部改成大写字母", "", "HELLO WORLD"),
    ("Convert \"GOOD Morning\" to lowercase.", "", "good morning"),
    ("找出 12、45、33 中最大的数", "", "45"),
    ("Which is the smallest of 12, 45, 33?", "", "12"),
    ("判断 17 是奇数还是偶数", "", "奇数"),
    ("Is 42 odd or even?", "", "even"),
])
def test_solve_recognises_each_kind(instruction, input, answer):
    assert tasks.solve(instruction, input) == answer


@pytest.mark.parametrize("instruction, input", [
    ("写一首关于秋天的诗", ""), ("Tell me about the moon.", ""), ("把这段话翻译成英文", "今天很好"),
    ("计算机是什么时候发明的？", ""), ("", ""),
    # Numbers in a table or a formula are no list or expression of the family.
    ("根据表格中的数据，哪座城市的年降水量最多？", "城市 | 年降水量（毫米）\n北京 | 585\n上海 | 1166"),
    ("求函数 f(x) = x² − 4x + 3 的最小值。", ""),
    ("计算下面的题目", "小明有3 + 4个苹果，他吃了2个"),
])
def test_solve_says_none_for_other_tasks(instruction, input):
    assert tasks.solve(instruction, input) is None


def test_check_normalises_whitespace_and_trailing_punctuation():
    assert tasks.check("把305写成中文数字", " 三百零五。 ") is True
    assert tasks.check("把 5、3、9 从小到大排列", "3，5，9") is True
    assert tasks.check("把 5、3、9 从小到大排列", "9, 5, 3") is False
    assert tasks.check("Convert \"abc\" to uppercase.", "abc") is False
    assert tasks.check("请把下面这句话倒过来写。\n春天来了", "了来天春") is True
    assert tasks.check("写一首关于秋天的诗", "秋风") is None


@pytest.mark.parametrize("language", ["zh", "en"])
def test_300_instructions_survive_near_duplicate_removal(language):
    rng = random.Random(2024)
    instructions = [tasks.generate_task(rng, language).instruction for _ in range(300)]
    kept = greedy_keep(instructions)
    assert len(kept) >= 0.6 * len(instructions), f"kept {len(kept)} of 300"


def test_token_rule():
    assert count_tokens("把305写成中文数字") == 8             # 7 CJK characters + one digit run
    assert count_tokens("Hello, world! 42") == 5              # 2 words, 2 punctuation marks, 1 digit run
    assert truncate("one two three four", 2) == ("one two", True)
    assert truncate("one two", 5) == ("one two", False)
    text = "我们正在为一个中文指令跟随模型收集训练数据, with some English words 123."
    assert "".join(pieces(text, 4)) == text


# -------------------------------------------------------------------------------- the server


@pytest.fixture(scope="module")
def server():
    with start_teacher(seed=0, noise=0, api_key=KEY) as running:
        yield running


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=30)


def chat(client, content: str, **kwargs):
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}], **kwargs)


def test_models_list(client):
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL


@pytest.mark.parametrize("language", ["zh", "en"])
def test_chat_self_instruct_reply_continues_the_list_with_correct_tasks(client, language):
    response = chat(client, self_instruct_prompt(language, 12))
    text = response.choices[0].message.content
    assert text.startswith("4. 指令:" if language == "zh" else "4. Instruction:")
    blocks = parse_blocks(text, language)
    assert sorted(blocks) == list(range(4, 13))
    for instruction, input, output in blocks.values():
        assert tasks.solve(instruction, input) == output
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.completion_tokens == count_tokens(text)
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


def test_completion_api_continues_after_the_final_opener(client):
    prompt = self_instruct_prompt("zh", 8)
    response = client.completions.create(model=MODEL, prompt=prompt)
    continuation = response.choices[0].text
    assert response.object == "text_completion"
    assert not continuation.lstrip().startswith("4.")
    assert "\n4. 输入:" in continuation
    blocks = parse_blocks("4. 指令:" + continuation, "zh")
    assert sorted(blocks) == list(range(4, 9))
    assert all(tasks.solve(i, x) == o for i, x, o in blocks.values())


def test_noise_makes_blocks_the_filters_must_catch():
    known = {sample[0] for by_language in SAMPLES.values() for samples in by_language.values() for sample in samples}
    with start_teacher(seed=3, noise=1.0) as running:
        client = openai.OpenAI(base_url=running.base_url, api_key="unused", max_retries=0)
        blocks = parse_blocks(chat(client, self_instruct_prompt("zh", 20)).choices[0].message.content, "zh")
    assert sorted(blocks) == list(range(4, 21))
    earlier = ["写一首关于春天的四行短诗。", "把下面的句子翻译成英文。", "列出三种常见的水果。"]
    near_copies = 0
    for number in sorted(blocks):
        instruction = blocks[number][0]
        if instruction not in known:
            # Otherwise it is a near-copy of an earlier task: de-duplication at 0.7 must catch it.
            assert max(rouge_l(rouge_tokens(instruction), rouge_tokens(e)) for e in earlier) > 0.7, instruction
            near_copies += 1
        earlier.append(instruction)
    assert 0 < near_copies < len(blocks)


@pytest.mark.parametrize("language", ["zh", "en"])
def test_judge_scores_right_and_wrong_answers(client, language):
    question = "把305写成中文数字" if language == "zh" else "Sort 5, 3, 9 in ascending order."
    right, wrong = ("三百零五", "三百五") if language == "zh" else ("3, 5, 9", "3, 9, 5")
    # The reference is deliberately not the answer: a family task is judged by recomputing it.
    for answer, expected in [(right, 1), (right + "。", 1), (wrong, 0)]:
        reply = chat(client, judge_prompt(language, question, "(see rubric)", answer)).choices[0].message.content
        assert score_of(reply, language) == expected
        assert len(reply.strip().splitlines()) == 2


def test_judge_falls_back_to_the_reference_for_other_questions(client):
    prompt = judge_prompt("zh", "中国的首都是哪里？", "北京", "北京。")
    assert score_of(chat(client, prompt).choices[0].message.content, "zh") == 1
    prompt = judge_prompt("en", "What is the capital of France?", "Paris", "Lyon")
    assert score_of(chat(client, prompt).choices[0].message.content, "en") == 0


def test_dialogue_prompt_gets_alternating_correct_turns(client):
    prompt = ("请围绕“数学练习”写一段3轮对话，用户用“Human:”开头，助手用“Assistant:”开头，不要写其他内容。")
    text = chat(client, prompt).choices[0].message.content
    parts = re.split(r"^(Human|Assistant): ", text, flags=re.MULTILINE)[1:]
    speakers, values = parts[0::2], [v.strip() for v in parts[1::2]]
    assert speakers == ["Human", "Assistant"] * 3
    for question, answer in zip(values[0::2], values[1::2]):
        assert tasks.answer_question(question) == answer


def test_answers_a_family_instruction_and_politely_declines_others(client):
    assert chat(client, "把305写成中文数字").choices[0].message.content == "三百零五"
    assert chat(client, "请把下面这句话倒过来写。\n\n春天来了").choices[0].message.content == "了来天春"
    assert chat(client, "Is 42 odd or even?").choices[0].message.content == "even"
    generic_zh = chat(client, "给我讲个笑话吧").choices[0].message.content
    generic_en = chat(client, "Tell me a joke").choices[0].message.content
    assert re.search(r"[\u4e00-\u9fff]", generic_zh) and not re.search(r"[\u4e00-\u9fff]", generic_en)
    assert generic_zh == chat(client, "明天会下雨吗？").choices[0].message.content      # fixed text


def test_wrong_or_missing_key_is_401(server):
    bad = openai.OpenAI(base_url=server.base_url, api_key="sk-wrong", max_retries=0)
    for call in (bad.models.list, lambda: chat(bad, "把305写成中文数字")):
        with pytest.raises(openai.AuthenticationError) as caught:
            call()
        assert caught.value.status_code == 401
        assert caught.value.code == "invalid_api_key"
    for headers in ({}, {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"}):
        response = httpx.get(server.base_url + "/models", headers=headers, timeout=10)
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "model_not_found"
    assert caught.value.body["message"].startswith("The model `gpt-4o`")


def test_malformed_bodies_are_400_in_openai_shape(server):
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    url = server.base_url + "/chat/completions"
    for body in [b"{not json", b"[]", b'{"model": "belle-teacher"}', b'{"model": "belle-teacher", "messages": []}',
                 b'{"model": "belle-teacher", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}',
                 b'{"model": 5, "messages": "hi"}']:
        response = httpx.post(url, content=body, headers=headers, timeout=10)
        assert response.status_code == 400, body
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "invalid_request_error"


def test_max_tokens_truncates_with_finish_reason_length(client):
    response = chat(client, self_instruct_prompt("zh", 10), max_tokens=7)
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 7
    completion = client.completions.create(model=MODEL, prompt=self_instruct_prompt("en", 10), max_tokens=5)
    assert completion.choices[0].finish_reason == "length"
    assert count_tokens(completion.choices[0].text) == 5


def test_streaming_chat(client):
    stream = chat(client, "计算 12 × 3 + 5", stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    with_choices = [c for c in chunks if c.choices]
    assert all(c.choices[0].index == 0 for c in with_choices)
    assert "".join(c.choices[0].delta.content or "" for c in with_choices) == "41"
    assert with_choices[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage.completion_tokens == 1

    long_reply = "".join(c.choices[0].delta.content or "" for c in chat(client, self_instruct_prompt("zh", 6), stream=True)
                         if c.choices)
    assert sorted(parse_blocks(long_reply, "zh")) == [4, 5, 6]


def test_streaming_sends_done(server):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "把305写成中文数字"}], "stream": True}
    response = httpx.post(server.base_url + "/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
    events = [line for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert response.headers["content-type"].startswith("text/event-stream")


def test_error_rate_one_alternates_429_and_503():
    with start_teacher(error_rate=1.0, seed=1) as running:
        client = openai.OpenAI(base_url=running.base_url, api_key="unused", max_retries=0)
        seen = []
        for _ in range(4):
            with pytest.raises(openai.APIStatusError) as caught:
                chat(client, "把305写成中文数字")
            seen.append(caught.value.status_code)
            if caught.value.status_code == 429:
                assert isinstance(caught.value, openai.RateLimitError)
                assert caught.value.code == "rate_limit_exceeded"
                assert caught.value.response.headers["retry-after"]
        assert seen == [429, 503, 429, 503]
        assert [m.id for m in client.models.list().data] == [MODEL]     # listing is never failed


def test_client_retries_get_through_injected_errors():
    with start_teacher(error_rate=0.5, seed=5) as running:
        client = openai.OpenAI(base_url=running.base_url, api_key="unused", max_retries=12)
        started = time.monotonic()
        answers = [chat(client, f"计算 {n} + 10").choices[0].message.content for n in range(10, 20)]
        assert answers == [str(n + 10) for n in range(10, 20)]
        assert time.monotonic() - started < 20          # retry-after-ms keeps retries short


def test_latency_overlaps_across_concurrent_requests():
    async def run(base_url: str) -> float:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
        started = time.monotonic()
        replies = await asyncio.gather(*[
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"计算 {n} × 2"}])
            for n in range(10, 18)])
        elapsed = time.monotonic() - started
        assert [r.choices[0].message.content for r in replies] == [str(n * 2) for n in range(10, 18)]
        await client.close()
        return elapsed

    with start_teacher(latency=0.5) as running:
        elapsed = asyncio.run(run(running.base_url))
    assert 0.5 <= elapsed < 2.0


def test_belle_teacher_help():
    belle = Path(sys.executable).with_name("belle")
    result = subprocess.run([str(belle), "teacher", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for flag in ("--port", "--model", "--api-key", "--latency", "--jitter", "--error-rate", "--noise", "--seed"):
        assert flag in result.stdout
    module = subprocess.run([sys.executable, "-m", "belle_teacher", "--help"], capture_output=True, text=True, timeout=60)
    assert module.returncode == 0 and "--error-rate" in module.stdout


# ----------------------------------------------------------------------------- pairwise judging


def pairwise_prompt_template() -> str:
    from importlib.resources import files

    return files("belle_evaluator").joinpath("data", "pairwise_prompt.txt").read_text(encoding="utf-8")


def render_pairwise(question: str, reference: str, answer_a: str, answer_b: str) -> str:
    return pairwise_prompt_template().format(question=question, std_answer=reference, answer_a=answer_a,
                                             answer_b=answer_b)


def task_question(task: tasks.Task) -> str:
    return task.instruction + ("\n" + task.input if task.input else "")


def test_bundled_pairwise_prompt_layout():
    template = pairwise_prompt_template()
    lines = template.splitlines()
    sections = ["问题: {question}", "标准回答: {std_answer}", "回答A: {answer_a}", "回答B: {answer_b}"]
    starts = [lines.index(section) for section in sections]
    assert starts == sorted(starts) and starts[0] > 0            # the rubric comes first, sections in order
    for line in lines[:starts[0]] + lines[starts[-1] + 1:]:
        assert not re.match(r"\s*(问题|标准回答|回答A|回答B|模型回答)\s*[:：]", line), line
    assert all(choice in lines[-1] for choice in ("[[A]]", "[[B]]", "[[C]]"))


@pytest.mark.parametrize("language", ["zh", "en"])
def test_rendered_bundled_prompt_parses_with_fields_intact(language):
    from belle_teacher.replies import parse_judge, parse_pairwise, special_reply

    rng = random.Random(31)
    for _ in range(50):
        task = tasks.generate_task(rng, language)
        wrong = task.output + "0"
        prompt = render_pairwise(task_question(task), task.output, wrong, task.output)
        parsed = parse_pairwise(prompt)
        assert parsed is not None, prompt
        assert (parsed.question, parsed.reference, parsed.answer_a, parsed.answer_b) == \
               (task_question(task), task.output, wrong, task.output)
        assert parsed.language == "zh"
        assert parse_judge(prompt) is None                    # the single-answer judge does not claim it
        # special_reply checks pairwise first: answer B is the correct one.
        assert special_reply(prompt)(random.Random(0), 0.0, False).endswith("[[B]]")


def test_parse_pairwise_reads_multiline_answers_and_english_labels():
    from belle_teacher.replies import parse_pairwise

    prompt = ("Compare the two answers.\nQuestion: Sort 5, 3, 9 in ascending order.\nReference answer: 3, 5, 9\n"
              "Answer A: 3, 5, 9\nso the list is sorted\nAnswer B: 9, 5, 3\n\n"
              "End your reply with [[A]], [[B]] or [[C]].")
    parsed = parse_pairwise(prompt)
    assert parsed is not None and parsed.language == "en"
    assert parsed.answer_a == "3, 5, 9\nso the list is sorted"
    assert parsed.answer_b == "9, 5, 3"                      # the closing request is not part of answer B
    assert parse_pairwise(judge_prompt("zh", "把305写成中文数字", "三百零五", "三百零五")) is None
    assert parse_pairwise("问题: 1+1\n回答A: 2\n回答B: 3") is None     # no reference section


def test_pairwise_reply_picks_the_correct_answer():
    from belle_teacher.replies import PairwisePrompt, pairwise_reply

    def verdict(question, reference, a, b, language="zh"):
        reply = pairwise_reply(PairwisePrompt(language, question, reference, a, b))
        assert len(reply.splitlines()) == 2, reply                # a reason line, then the verdict
        return reply.splitlines()[-1]

    # A family task is judged by recomputing it (the reference is deliberately unhelpful here).
    assert verdict("把305写成中文数字", "(见评分标准)", "三百零五", "三百五") == "[[A]]"
    assert verdict("把305写成中文数字", "(见评分标准)", "三百五", "三百零五。") == "[[B]]"
    assert verdict("把305写成中文数字", "", "三百零五", "三百零五") == "[[C]]"      # both right
    assert verdict("计算 12 × 3 + 5", "", "40", "42") == "[[C]]"                    # both wrong
    # Other questions fall back to the reference.
    assert verdict("中国的首都是哪里？", "北京", "上海", "北京。") == "[[B]]"
    assert verdict("What is the capital of France?", "Paris", "Paris", "Lyon", "en") == "[[A]]"


def test_position_bias_first_always_prefers_a_and_swapping_cancels_it():
    from belle_shared.judging import parse_preference
    from belle_teacher.replies import PairwisePrompt, pairwise_reply

    question, right, wrong = "把305写成中文数字", "三百零五", "三百五"
    outcomes = {}
    for bias in ("none", "first"):
        forward = parse_preference(pairwise_reply(PairwisePrompt("zh", question, "", right, wrong), position_bias=bias))
        backward = parse_preference(pairwise_reply(PairwisePrompt("zh", question, "", wrong, right), position_bias=bias))
        outcomes[bias] = (forward, backward)
    # Unbiased: the right answer wins in both orders (A first, then B).
    assert outcomes["none"] == ("A", "B")
    # Biased: always A, so the right answer wins in one order and loses in the other. Mapping the
    # swapped verdict back (B -> right wins) gives one win each: a tie, the bias cancelled.
    assert outcomes["first"] == ("A", "A")
    with pytest.raises(ValueError):
        pairwise_reply(PairwisePrompt("zh", question, "", right, wrong), position_bias="last")


def test_position_bias_option_reaches_the_server():
    from belle_shared.judging import parse_preference
    from belle_teacher.__main__ import parse_args

    assert parse_args([]).position_bias == "none"
    assert parse_args(["--position-bias", "first"]).position_bias == "first"
    with pytest.raises(SystemExit):
        parse_args(["--position-bias", "last"])
    forward = render_pairwise("计算 12 × 3 + 5", "41", "41", "40")
    backward = render_pairwise("计算 12 × 3 + 5", "41", "40", "41")
    verdicts = {}
    for bias in ("none", "first"):
        with start_teacher(seed=0, position_bias=bias) as running:
            client = openai.OpenAI(base_url=running.base_url, api_key="unused", max_retries=0)
            verdicts[bias] = [parse_preference(chat(client, prompt).choices[0].message.content)
                              for prompt in (forward, backward)]
    assert verdicts == {"none": ["A", "B"], "first": ["A", "A"]}
