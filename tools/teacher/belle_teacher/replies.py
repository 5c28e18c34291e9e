"""What the teacher says: recognise the kind of prompt and write the reply text.

Five kinds of prompt, tried in this order (formats: docs of the self-instruct, dialogue and judge
templates, shared with the data-generation service, and the evaluator's `data/pairwise_prompt.txt`):

a) self-instruct: numbered `N. 指令:` / `N. Instruction:` blocks -> new tasks of the family as blocks
   N..M (M from `{num_tasks}个` / `{num_tasks} tasks`, default 10); a `noise` share of them bad;
b) pairwise judge: `问题:` / `标准回答:` / `回答A:` / `回答B:` (or Question / Reference answer /
   Answer A / Answer B) -> a one-line reason and `[[A]]`, `[[B]]` or `[[C]]` (a tie), FastChat's
   verdict format; with `position_bias="first"` always `[[A]]`;
c) judge: `问题:` / `标准回答:` / `模型回答:` (or Question / Reference answer / Model answer) ->
   `得分: 1|0` (`Score: ...`) and a one-line reason;
d) dialogue: `{turns}轮` / `{turns} turns` with Human/Assistant labels -> a dialogue of family tasks;
e) anything else: an instruction (optional input on later lines) answered by `tasks.solve`, or a
   fixed, polite generic answer.
"""

from __future__ import annotations

import random
import re
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Callable, Literal

from belle_teacher import tasks
from belle_teacher.noise import bad_task
from belle_teacher.tasks import Task

LABELS = {"zh": ("指令", "输入", "输出"), "en": ("Instruction", "Input", "Output")}
NO_INPUT = {"zh": "<无输入>", "en": "<noinput>"}
GENERIC = {
    "zh": "抱歉，这个问题我没法给出确切的回答。请换一种问法，或者补充更多信息。",
    "en": "Sorry, I cannot give a precise answer to that. Please rephrase the question or add more details.",
}
# How the pairwise judge treats the order of the answers: "none" judges them on their merits;
# "first" always prefers answer A, a deliberately biased judge for testing order swapping.
PositionBias = Literal["none", "first"]
POSITION_BIASES: tuple[str, ...] = ("none", "first")
DEFAULT_NUM_TASKS = 10
MAX_BLOCKS = 100
MAX_TURNS = 20

_BLOCK_LABEL = re.compile(r"^[ \t]*(\d+)[ \t]*[.．][ \t]*(指令|输入|输出|Instruction|Input|Output)[ \t]*[:：]",
                          re.MULTILINE | re.IGNORECASE)
_NUM_TASKS = {"zh": re.compile(r"(\d+)\s*个"), "en": re.compile(r"(\d+)\s+(?:\w+\s+)?(?:tasks|instructions)", re.I)}


# ------------------------------------------------------------------------------ self-instruct


@dataclass
class SelfInstructPrompt:
    language: str
    first_index: int                 # number of the first block to write
    last_index: int                  # number of the last block to write
    examples: list[Task] = field(default_factory=list)


def parse_self_instruct(text: str) -> SelfInstructPrompt | None:
    labels = list(_BLOCK_LABEL.finditer(text))
    openers = [m for m in labels if m.group(2).lower() in ("指令", "instruction")]
    if not openers:
        return None
    last = openers[-1]
    language = "zh" if last.group(2) == "指令" else "en"
    examples = _example_blocks(text, labels)
    if text[last.end():].strip():
        # No final opener: the prompt ends with complete examples; continue after the highest number.
        if not examples:
            return None
        first = max(int(m.group(1)) for m in openers) + 1
    else:
        first = int(last.group(1))
    total = _num_tasks(text[:labels[0].start()], language) or _num_tasks(text, language) or DEFAULT_NUM_TASKS
    last_index = min(max(total, first), first + MAX_BLOCKS - 1)
    return SelfInstructPrompt(language, first, last_index, examples)


def _num_tasks(text: str, language: str) -> int | None:
    """The count the prompt asks for; a "N个任务" beats another "N个" (say, 不超过100个字)."""
    found = list(_NUM_TASKS[language].finditer(text))
    about_tasks = [m for m in found if re.match(r"\s*\S{0,6}?(任务|指令|tasks|instructions)", text[m.end() - 1:])]
    best = (about_tasks or found or [None])[0]
    return int(best.group(1)) if best else None


def _example_blocks(text: str, labels: list[re.Match]) -> list[Task]:
    """The complete example blocks of a prompt (used to make near-copy noise)."""
    blocks: dict[int, dict[str, str]] = {}
    for index, match in enumerate(labels):
        end = labels[index + 1].start() if index + 1 < len(labels) else len(text)
        value = re.split(r"^\s*###\s*$", text[match.end():end], flags=re.MULTILINE)[0].strip()
        field_name = {"指令": "instruction", "输入": "input", "输出": "output"}.get(match.group(2), match.group(2).lower())
        blocks.setdefault(int(match.group(1)), {})[field_name] = value
    examples = []
    for fields in blocks.values():
        if fields.get("instruction") and fields.get("output") and "input" in fields:
            no_input = fields["input"].strip().rstrip("。").lower() in ("<无输入>", "<noinput>")
            examples.append(Task("example", fields["instruction"], "" if no_input else fields["input"], fields["output"]))
    return examples


def render_block(index: int, task: Task, language: str) -> str:
    instruction, input, output = LABELS[language]
    return (f"{index}. {instruction}: {task.instruction}\n{index}. {input}:\n{task.input or NO_INPUT[language]}\n"
            f"{index}. {output}:\n{task.output}")


def self_instruct_reply(prompt: SelfInstructPrompt, rng: random.Random, *, noise: float, completion: bool,
                        holdout: Container[str] = ()) -> str:
    """Blocks first..last; for the completion API, the text that follows the prompt's final opener.
    No task asks a question of `holdout` (question keys of a held-out eval set)."""
    earlier = list(prompt.examples)
    blocks = []
    for index in range(prompt.first_index, prompt.last_index + 1):
        if rng.random() < noise:
            task = bad_task(rng, prompt.language, earlier)
        else:
            task = tasks.generate_task(rng, prompt.language, avoid=holdout)
        earlier.append(task)
        blocks.append(render_block(index, task, prompt.language))
    text = "\n###\n".join(blocks)
    if completion:
        # The prompt already ends with "N. 指令:"; continue right after it.
        text = " " + text.split(":", 1)[1].lstrip()
    return text


# -------------------------------------------------------------------------------------- judge

_JUDGE_LABELS = {
    "zh": {"question": "问题", "reference": "标准回答", "answer": "模型回答"},
    "en": {"question": "Question", "reference": "Reference answer", "answer": "Model answer"},
}
# Lines that end the model answer: the rubric's own request for a score or a reason.
_JUDGE_STOP = r"得分|评分|分数|理由|Score|Rating|Reason"
# A line after the model answer that asks for the score (the rubric continues after the sections).
_RUBRIC_LINE = r"得分|评分|打分|\bscore\b|\brating\b"


@dataclass
class JudgePrompt:
    language: str
    question: str
    reference: str
    answer: str


def parse_judge(text: str) -> JudgePrompt | None:
    for language, names in _JUDGE_LABELS.items():
        label = re.compile(rf"^[ \t]*({'|'.join(names.values())}|{_JUDGE_STOP})[ \t]*[:：]", re.MULTILINE | re.IGNORECASE)
        marks = list(label.finditer(text))

        def value(position: int) -> str:
            end = marks[position + 1].start() if position + 1 < len(marks) else len(text)
            return text[marks[position].end():end].strip()

        def last_before(name: str, limit: int) -> int | None:
            hits = [i for i, m in enumerate(marks[:limit]) if m.group(1).lower() == name.lower()]
            return hits[-1] if hits else None

        answer = last_before(names["answer"], len(marks))
        reference = last_before(names["reference"], answer) if answer is not None else None
        question = last_before(names["question"], reference) if reference is not None else None
        if question is not None:
            return JudgePrompt(language, value(question), value(reference), _cut_at_rubric(value(answer)))
    return None


def _cut_at_rubric(answer: str) -> str:
    """The model answer without rubric lines after it (a request for 得分 / a score is not part of it)."""
    lines = answer.split("\n")
    for index, line in enumerate(lines):
        if index and re.search(_RUBRIC_LINE, line, re.IGNORECASE):
            return "\n".join(lines[:index]).strip()
    return answer


_HOW = {
    True: {"zh": "按题目重新计算后核对", "en": "checked by recomputing the task"},
    False: {"zh": "与标准回答逐字比对", "en": "compared with the reference answer exactly"},
}


def _is_correct(question: str, answer: str, reference: str) -> tuple[bool, bool]:
    """(whether `answer` is right, whether that was decided by recomputing a family task); a question
    outside the family falls back to comparing with the reference after `tasks.normalize_answer`."""
    verdict = tasks.check(question, answer)
    if verdict is not None:
        return verdict, True
    return tasks.normalize_answer(answer) == tasks.normalize_answer(reference), False


def judge_reply(prompt: JudgePrompt) -> str:
    verdict, recomputed = _is_correct(prompt.question, prompt.answer, prompt.reference)
    how = _HOW[recomputed][prompt.language]
    score = 1 if verdict else 0
    if prompt.language == "zh":
        return f"得分: {score}\n理由: {how}，模型回答{'正确' if verdict else '不正确'}。"
    return f"Score: {score}\nReason: {how}, the model answer is {'correct' if verdict else 'wrong'}."


# ------------------------------------------------------------------------------ pairwise judge

_PAIRWISE_LABELS = {
    "zh": {"question": "问题", "reference": "标准回答", "a": "回答A", "b": "回答B"},
    "en": {"question": "Question", "reference": "Reference answer", "a": "Answer A", "b": "Answer B"},
}
# The rubric's closing request for the verdict: where answer B ends.
_VERDICT_REQUEST = re.compile(r"\[\[\s*(?:A|B|C|tie)\s*\]\]", re.IGNORECASE)


@dataclass
class PairwisePrompt:
    language: str
    question: str
    reference: str
    answer_a: str
    answer_b: str


def parse_pairwise(text: str) -> PairwisePrompt | None:
    """The four sections at line starts, in order: question, reference, answer A, answer B (the last
    such sequence, so a rubric that quotes an example first does not win); None if any is missing."""
    for language, names in _PAIRWISE_LABELS.items():
        label = re.compile(rf"^[ \t]*({'|'.join(names.values())})[ \t]*[:：]", re.MULTILINE | re.IGNORECASE)
        kind_of = {value.lower(): key for key, value in names.items()}
        marks = [(kind_of[m.group(1).lower()], m) for m in label.finditer(text)]
        found: dict[str, int] = {}
        limit = len(marks)
        # From answer B backwards: each section is the last of its kind before the next one.
        for kind in ("b", "a", "reference", "question"):
            hits = [i for i, (k, _) in enumerate(marks[:limit]) if k == kind]
            if not hits:
                break
            found[kind] = limit = hits[-1]
        else:
            starts = [m for _, m in marks]
            question, reference, a, b = (_section(text, starts, found[k]) for k in ("question", "reference", "a", "b"))
            return PairwisePrompt(language, question, reference, a, _cut_at_verdict_request(b))
    return None


def _section(text: str, marks: list[re.Match], position: int) -> str:
    """The text after label `position`, up to the next label (or the end)."""
    end = marks[position + 1].start() if position + 1 < len(marks) else len(text)
    return text[marks[position].end():end].strip()


def _cut_at_verdict_request(answer: str) -> str:
    """Answer B without the rubric's closing lines (the ones asking for [[A]] / [[B]] / [[C]])."""
    lines = answer.split("\n")
    for index, line in enumerate(lines):
        if index and _VERDICT_REQUEST.search(line):
            return "\n".join(lines[:index]).strip()
    return answer


def pairwise_reply(prompt: PairwisePrompt, *, position_bias: PositionBias = "none") -> str:
    """A reason line, then the verdict: the one correct answer wins; both or neither correct is a
    tie ([[C]]). With `position_bias="first"` the verdict is always [[A]], whatever the answers."""
    if position_bias not in POSITION_BIASES:
        raise ValueError(f"position_bias must be one of {POSITION_BIASES}, not {position_bias!r}")
    zh = prompt.language == "zh"
    if position_bias == "first":
        return ("回答A更好。" if zh else "Answer A is better.") + "\n[[A]]"
    a_ok, recomputed = _is_correct(prompt.question, prompt.answer_a, prompt.reference)
    b_ok, _ = _is_correct(prompt.question, prompt.answer_b, prompt.reference)
    verdict = "C" if a_ok == b_ok else ("A" if a_ok else "B")
    how = _HOW[recomputed][prompt.language]
    if zh:
        reason = f"{how}：回答A{'正确' if a_ok else '不正确'}，回答B{'正确' if b_ok else '不正确'}。"
    else:
        reason = f"{_cap(how)}: answer A is {'correct' if a_ok else 'wrong'}, answer B is {'correct' if b_ok else 'wrong'}."
    return f"{reason}\n[[{verdict}]]"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


# ----------------------------------------------------------------------------------- dialogue


@dataclass
class DialoguePrompt:
    language: str
    turns: int


def parse_dialogue(text: str) -> DialoguePrompt | None:
    if not re.search(r"Human\s*[:：]?", text) or not re.search(r"Assistant", text):
        return None
    zh = re.search(r"(\d+)\s*轮", text)
    if zh:
        return DialoguePrompt("zh", max(1, min(int(zh.group(1)), MAX_TURNS)))
    en = re.search(r"(\d+)\s+turns?\b", text, re.IGNORECASE)
    if en:
        return DialoguePrompt("en", max(1, min(int(en.group(1)), MAX_TURNS)))
    return None


def dialogue_reply(prompt: DialoguePrompt, rng: random.Random, *, holdout: Container[str] = ()) -> str:
    lines = []
    for _ in range(prompt.turns):
        task = tasks.generate_task(rng, prompt.language, avoid=holdout)
        question = task.instruction + ("\n" + task.input if task.input else "")
        lines += [f"Human: {question}", f"Assistant: {task.output}"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- dispatch


def instruction_reply(text: str) -> str:
    answer = tasks.answer_question(text)
    if answer is not None:
        return answer
    return GENERIC["zh" if re.search(r"[\u4e00-\u9fff]", text) else "en"]


Replier = Callable[[random.Random, float, bool], str]


def special_reply(text: str, *, position_bias: PositionBias = "none", holdout: Container[str] = ()) -> Replier | None:
    """A replier for a self-instruct, pairwise judge, judge or dialogue prompt; None for a plain
    instruction. Pairwise comes before judge: its layout is the more specific of the two."""
    si = parse_self_instruct(text)
    if si is not None:
        return lambda rng, noise, completion: self_instruct_reply(si, rng, noise=noise, completion=completion,
                                                                  holdout=holdout)
    pairwise = parse_pairwise(text)
    if pairwise is not None:
        return lambda rng, noise, completion: pairwise_reply(pairwise, position_bias=position_bias)
    judge = parse_judge(text)
    if judge is not None:
        return lambda rng, noise, completion: judge_reply(judge)
    dialogue = parse_dialogue(text)
    if dialogue is not None:
        return lambda rng, noise, completion: dialogue_reply(dialogue, rng, holdout=holdout)
    return None


def reply(texts: list[str], instruction: str, rng: random.Random, *, noise: float, completion: bool,
          position_bias: PositionBias = "none", holdout: Container[str] = ()) -> str:
    """The reply to a request: the first of `texts` that is a special prompt decides, else
    `instruction` is answered as a task. Generated tasks never ask a question of `holdout`."""
    for text in texts:
        replier = special_reply(text, position_bias=position_bias, holdout=holdout)
        if replier is not None:
            return replier(rng, noise, completion)
    return instruction_reply(instruction)
