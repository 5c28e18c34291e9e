"""Unit tests for belle_datagen.seeds: the bundled seed tasks, templates and topics, and seed-file errors."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import pytest

from belle_datagen.seeds import (
    CATEGORIES,
    MAX_SEED_TASKS,
    REQUIRED_PLACEHOLDERS,
    PromptTemplateError,
    SeedFileError,
    SeedTask,
    bundled_seed_tasks,
    bundled_template,
    bundled_text,
    bundled_topics,
    check_template,
    parse_seed_tasks,
)
from helpers import lcs_length
from helpers import rouge_l_f as rouge_l

MIN_PER_CLASS = {"zh": 15, "en": 4}
MIN_TOTAL = {"zh": 165, "en": 44}
# The words the generator's filters reject in an instruction; a seed containing one would be dropped.
FILTERED_WORDS = ("图片", "图像", "照片", "链接", "http", "openai", "gpt", "chatgpt", "文件", "图表")
NEEDS_INPUT = {"closed_qa", "extraction", "rewriting", "summarization", "translation", "classification"}


def is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


def parse_error(lines, **kwargs) -> SeedFileError:
    with pytest.raises(SeedFileError) as info:
        parse_seed_tasks(lines, **kwargs)
    return info.value


def task_line(**overrides) -> str:
    row = {"instruction": "把这句话翻译成英文。", "instances": [{"input": "你好", "output": "Hello"}]}
    row.update(overrides)
    return json.dumps(row, ensure_ascii=False)


# ---------------------------------------------------------------------------- the helpers themselves


def test_lcs_and_rouge_helpers_are_exact():
    assert lcs_length("ABCBDAB", "BDCABA") == 4
    assert lcs_length("", "abc") == 0
    assert rouge_l("abcd", "abcd") == 1.0
    assert rouge_l("abcd", "wxyz") == 0.0
    assert rouge_l("写一首诗", "写一首歌") == pytest.approx(0.75)


# ---------------------------------------------------------------------------------- bundled seeds


@pytest.mark.parametrize("language", ["zh", "en"])
def test_bundled_seed_tasks_parse_and_cover_every_class(language):
    tasks = bundled_seed_tasks(language)
    assert len(tasks) >= MIN_TOTAL[language]
    counts = Counter(task.category for task in tasks)
    assert set(counts) == set(CATEGORIES)
    assert min(counts.values()) >= MIN_PER_CLASS[language], counts
    assert len({task.id for task in tasks}) == len(tasks)
    assert len({task.name for task in tasks}) == len(tasks)
    assert all(task.name and task.name.isascii() and task.name == task.name.lower() for task in tasks)
    for task in tasks:
        assert task.is_classification == (task.category == "classification"), task.id
        if task.category in NEEDS_INPUT:
            assert task.input, f"{task.id} ({task.category}) needs an input"
    with_input = sum(1 for task in tasks if task.input)
    assert 0.35 <= with_input / len(tasks) <= 0.7


@pytest.mark.parametrize("language", ["zh", "en"])
def test_bundled_instructions_avoid_the_generation_filters(language):
    for task in bundled_seed_tasks(language):
        lowered = task.instruction.lower()
        assert not [w for w in FILTERED_WORDS if w in lowered], task.instruction


def test_zh_seed_tasks_are_chinese():
    tasks = bundled_seed_tasks("zh")
    text = "".join(task.instruction + task.input + task.output for task in tasks)
    cjk = sum(map(is_cjk, text))
    latin = sum(ch.isascii() and ch.isalpha() for ch in text)
    assert cjk / (cjk + latin) > 0.75
    for task in tasks:
        assert 8 <= len(task.instruction) <= 60, task.instruction
        instruction_cjk = sum(map(is_cjk, task.instruction))
        instruction_latin = sum(ch.isascii() and ch.isalpha() for ch in task.instruction)
        assert instruction_cjk > instruction_latin, task.instruction


def test_zh_seed_instructions_are_not_near_duplicates():
    instructions = [task.instruction for task in bundled_seed_tasks("zh")]
    too_close = [(a, b) for a, b in itertools.combinations(instructions, 2) if rouge_l(a, b) > 0.7]
    assert too_close == []


@pytest.mark.parametrize("language", ["zh", "en"])
def test_bundled_code_outputs_compile(language):
    """Outputs of code tasks that are plain Python (not an explanation) must at least compile."""
    code_starts = ("def ", "import ", "from ", "for ", "class ", "print(")
    compiled = 0
    for task in bundled_seed_tasks(language):
        if task.category == "code" and task.output.startswith(code_starts):
            compile(task.output, task.id, "exec")
            compiled += 1
    assert compiled >= 2


def test_bundled_seed_tasks_returns_a_fresh_list():
    first = bundled_seed_tasks("zh")
    first.clear()
    assert bundled_seed_tasks("zh")


def test_bundled_helpers_reject_unknown_names():
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        bundled_seed_tasks("fr")
    with pytest.raises(ValueError, match="bare file name"):
        bundled_text("../seeds.py")
    with pytest.raises(ValueError, match="unknown template kind"):
        bundled_template("judge", "zh")


# ------------------------------------------------------------------------------ parsing: accepted


def test_parse_reads_bytes_and_text_lines_and_fills_defaults():
    lines = [
        "\ufeff" + task_line(id="t1", name="say_hello", category="translation", extra="ignored"),
        "",
        "   ",
        task_line(is_classification=True, instances=[{"input": "", "output": "  Hi  "}, {"input": "a", "output": "b"}]),
    ]
    expected = [
        SeedTask(id="t1", name="say_hello", instruction="把这句话翻译成英文。", input="你好", output="Hello",
                 is_classification=False, category="translation"),
        SeedTask(id="seed_task_4", name="", instruction="把这句话翻译成英文。", input="", output="Hi",
                 is_classification=True, category=None),
    ]
    assert parse_seed_tasks(lines) == expected
    assert parse_seed_tasks([(line + "\n").encode("utf-8") for line in lines]) == expected


def test_parse_accepts_flat_belle_and_alpaca_rows():
    line = json.dumps({"instruction": "计算1+1。", "input": "", "output": "2"}, ensure_ascii=False)
    assert parse_seed_tasks([line]) == [
        SeedTask(id="seed_task_1", name="", instruction="计算1+1。", input="", output="2",
                 is_classification=False, category=None),
    ]


def test_parse_treats_null_optional_fields_as_absent():
    [task] = parse_seed_tasks([task_line(id=None, name=None, category=None, is_classification=None)])
    assert (task.id, task.name, task.category, task.is_classification) == ("seed_task_1", "", None, False)


# ------------------------------------------------------------------------------- parsing: rejected


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        (task_line(instances=[{"input": "x", "output": None}]),
         "instances[0].output", "expected a non-empty string, found null"),
        (task_line(instances=[{"input": "x", "output": "   "}]),
         "instances[0].output", "expected a non-empty string, found a blank string"),
        (task_line(instances=[{"input": "x", "output": "ok"}, {"input": "y"}]),
         "instances[1].output", "expected a non-empty string, found nothing (the key is missing)"),
        (task_line(instances=[{"input": 3, "output": "ok"}]),
         "instances[0].input", "expected a string, found a number (3)"),
        (task_line(instances=[]), "instances",
         "expected a non-empty array of {input, output} objects, found an empty array"),
        (task_line(instances={"input": "", "output": "x"}), "instances",
         "expected a non-empty array of {input, output} objects, found an object"),
        (task_line(instances=["x"]), "instances[0]", "expected an object with input and output, found a string"),
        (task_line(instruction=""), "instruction", "expected a non-empty string, found an empty string"),
        (task_line(instruction=["a"]), "instruction", "expected a non-empty string, found an array"),
        (json.dumps({"instruction": "x"}), "instances",
         "expected a non-empty array of {input, output} objects (or flat input and output fields), "
         "found nothing (the key is missing)"),
        (json.dumps({"instruction": "x", "output": "y"}), "input",
         "expected a string, found nothing (the key is missing)"),
        (json.dumps({"instruction": "x", "input": "", "output": False}), "output",
         "expected a non-empty string, found false"),
        (task_line(is_classification="yes"), "is_classification", "expected true or false, found a string"),
        (task_line(id=7), "id", "expected a string, found a number (7)"),
        (task_line(category=["math"]), "category", "expected a string, found an array"),
    ],
)
def test_parse_names_line_field_and_what_was_found(line, field, message):
    error = parse_error([task_line(), "", line, task_line()])
    assert (error.line, error.field, error.message) == (3, field, message)
    assert str(error) == f"seed file: line 3: {field}: {message}"


def test_the_brief_example_message_reads_as_documented():
    error = parse_error([task_line(), task_line(), task_line(instances=[{"input": "", "output": None}])],
                        source="seeds.jsonl")
    assert str(error) == "seeds.jsonl: line 3: instances[0].output: expected a non-empty string, found null"


def test_parse_rejects_a_line_that_is_not_an_object():
    error = parse_error([task_line(), "[1, 2]"])
    assert (error.line, error.field, error.message) == (2, None, "expected a JSON object, found an array")
    assert str(error) == "seed file: line 2: expected a JSON object, found an array"


def test_parse_rejects_invalid_json_with_its_position():
    error = parse_error([task_line(), '{"instruction": "x", }'])
    assert error.line == 2 and error.field is None
    assert error.message.startswith("not valid JSON (Expecting property name enclosed in double quotes at column")


def test_parse_rejects_invalid_utf8():
    error = parse_error([task_line().encode(), b'{"instruction": "\xff"}\n'])
    assert (error.line, error.message) == (2, "not valid UTF-8 (byte 0xff at position 18)")


@pytest.mark.parametrize("lines", [[], [""], ["\n", "  \n"], [b"\n"]])
def test_parse_rejects_a_file_without_tasks(lines):
    error = parse_error(lines)
    assert error.line is None and error.field is None
    assert str(error) == "seed file: no tasks (the file is empty or has only blank lines)"


def test_parse_stops_at_the_first_error():
    error = parse_error([task_line(instruction=""), "not json"])
    assert (error.line, error.field) == (1, "instruction")


def test_parse_rejects_more_than_the_maximum_number_of_tasks():
    line = '{"instruction": "x", "input": "", "output": "y"}'
    assert len(parse_seed_tasks(itertools.repeat(line, MAX_SEED_TASKS))) == MAX_SEED_TASKS
    error = parse_error(itertools.repeat(line, MAX_SEED_TASKS + 5))
    assert error.line == MAX_SEED_TASKS + 1
    assert error.message.startswith("more than 100,000 tasks")


# ------------------------------------------------------------------------------ prompt templates


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("kind", sorted(REQUIRED_PLACEHOLDERS))
def test_bundled_templates_pass_the_check(kind, language):
    text = bundled_template(kind, language)
    assert check_template(text, kind) is text
    for placeholder in REQUIRED_PLACEHOLDERS[kind]:
        assert placeholder in text


def test_self_instruct_templates_end_with_the_examples():
    # The renderer appends the opener of the next block after the examples, so nothing may follow them.
    zh = bundled_template("self_instruct", "zh")
    assert zh.endswith("下面是{num_tasks}个任务的列表：\n{examples}")
    assert "<无输入>" in zh
    en = bundled_template("self_instruct", "en")
    assert en.endswith("{num_tasks} tasks:\n{examples}")
    assert "<noinput>" in en


def test_dialogue_templates_name_the_turn_count_and_line_labels():
    zh = bundled_template("dialogue", "zh")
    assert "{turns}轮" in zh and "Human:" in zh and "Assistant:" in zh
    en = bundled_template("dialogue", "en")
    assert "{turns} turns" in en and "Human:" in en and "Assistant:" in en


def test_check_template_names_the_missing_placeholder():
    with pytest.raises(PromptTemplateError) as info:
        check_template("下面是{num_tasks}个任务：", "self_instruct")
    assert info.value.missing == ("{examples}",)
    assert "{examples}" in str(info.value) and "self_instruct" in str(info.value)

    with pytest.raises(PromptTemplateError) as info:
        check_template("Talk about {topic}.", "dialogue")
    assert info.value.missing == ("{turns}",)

    with pytest.raises(PromptTemplateError) as info:
        check_template("no placeholders at all", "dialogue")
    assert info.value.missing == ("{topic}", "{turns}")
    assert "{topic} and {turns}" in str(info.value)


def test_check_template_wants_the_exact_token():
    # Rendering is str.replace of the exact token, so a spaced or renamed placeholder would stay unfilled.
    with pytest.raises(PromptTemplateError):
        check_template("{ examples } {num_tasks}", "self_instruct")
    with pytest.raises(ValueError, match="unknown template kind"):
        check_template("{examples}", "judge")


# ------------------------------------------------------------------------------------------ topics


@pytest.mark.parametrize(("language", "minimum"), [("zh", 60), ("en", 30)])
def test_bundled_topics(language, minimum):
    topics = bundled_topics(language)
    assert len(topics) >= minimum
    assert len(set(topics)) == len(topics)
    assert all(topic == topic.strip() and topic for topic in topics)
    if language == "zh":
        assert all(any(map(is_cjk, topic)) for topic in topics)
