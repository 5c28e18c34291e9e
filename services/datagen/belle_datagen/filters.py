"""Decide which generated samples to keep: BELLE's rules for Chinese, Alpaca's for English.

``drop_reason(task, language=...)`` returns None to keep a task or a reason code from ``REASONS``;
the generator counts drops by code for the job's drop report. The rules are our own, written to
match the intent of BELLE's ``generate_instruction.py`` (zh) and Alpaca's (en): drop what a text
model cannot do (images, files, links), what talks about the model itself, and malformed text.
Programming tasks are wanted, so nothing here drops a task for asking for code.
Standard library only.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Sequence

from belle_datagen.blocks import LANGUAGES, Task

REASONS: dict[str, str] = {
    # From the reply parser (blocks.py), listed here so the drop report describes every code.
    "unparseable": "the teacher's reply contained no labelled task block",
    "truncated": "the last block of a reply cut off at the token limit",
    "incomplete": "a block missing its instruction, input or output, or with an empty one",
    "unparseable_dialogue": "the dialogue reply had no Human/Assistant pair to keep",
    # From the filters below.
    "leftover_markup": "a field still contains a template placeholder or a block label",
    "instruction_length": "instruction too short or too long (zh: <4 letters or >150 chars; "
    "en: <=3 or >150 words)",
    "output_too_short": "output empty, a placeholder such as N/A, or under 2 letters",
    "starts_with_punctuation": "instruction starts with a punctuation mark",
    "non_english": "English instruction starting with a non-ASCII character",
    "write_a_program": 'English instruction starting with "Write a program"',
    "blacklisted_word": "instruction mentions something a text model cannot use "
    "(images, files, links, audio, video) or GPT/OpenAI",
    "addresses_model": 'text that speaks as or to an AI model ("As an AI language model ...")',
    "language_mismatch": "Chinese instruction answered in English without asking for English",
}

_INSTRUCTION_MIN_ZH = 4  # visible letters/digits
_INSTRUCTION_MAX_ZH = 150  # characters
_INSTRUCTION_MIN_WORDS_EN = 4  # Alpaca drops <= 3 words
_INSTRUCTION_MAX_WORDS_EN = 150
_OUTPUT_MIN = 2  # visible letters/digits

# Latin words are matched case-insensitively as substrings: Chinese text has no word boundaries,
# and "GPT" also covers ChatGPT, GPT-3 and GPT-4.
_BLACKLIST_ZH = (
    "图片", "图像", "照片", "图表", "曲线图", "折线图", "柱状图", "饼状图", "链接", "网址",
    "http", "文件", "视频", "音频", "openai", "chatgpt", "gpt",
)  # fmt: skip
# Alpaca's list, matched as whole words; we add OpenAI/GPT for the same reason as in Chinese.
_BLACKLIST_EN = re.compile(
    r"\b(?:images?|graphs?|pictures?|files?|maps?|draw|plot|go\s+to|video|audio|music"
    r"|flowchart|diagram|openai|chatgpt|gpt(?:-?[0-9.]+)?)\b",
    re.IGNORECASE,
)

# The model speaking as an AI, or an instruction addressing it as one ("你是一个AI助手").
# Checked on lower-cased text with whitespace removed (zh) or collapsed (en), in both languages
# because Chinese replies sometimes slip into English.
_ARTICLE_ZH = r"(?:一个|一名|一款|一种|一位|个)?"
_AI_ZH = r"(?:ai|人工智能)"
# After a bare "AI"/"人工智能" only a clause break counts, so "我是一个人工智能专业的学生" stays.
_AI_END_ZH = r"(?=$|[，,。.！!：:；;、]|无法|不能|没有|不会|并不|而)"
_ADDRESSES_MODEL_ZH = re.compile(
    "|".join(
        [
            rf"(?:作为|身为|我只是|我仅是|我是|你是){_ARTICLE_ZH}{_AI_ZH}?(?:大型)?语言模型",
            rf"(?:作为|身为|我只是|我仅是|我是|你是){_ARTICLE_ZH}(?:{_AI_ZH}|虚拟)(?:助手|助理|模型|机器人|程序(?!员))",
            rf"(?:作为|身为|我只是|我仅是|我是|你是){_ARTICLE_ZH}{_AI_ZH}{_AI_END_ZH}",
            r"(?:作为|我是|我是由)(?:chatgpt|gpt|openai)",
        ]
    )
)
_AI_EN = r"(?:ai|artificial intelligence)"
_ADDRESSES_MODEL_EN = re.compile(
    "|".join(
        [
            rf"\bas an? (?:{_AI_EN} )?(?:large )?language model\b",
            rf"\bas an? {_AI_EN} (?:assistant|model|chatbot)\b",
            rf"\bas an? {_AI_EN}(?=$|[,.;:!])",
            rf"\bi(?:'m| am) (?:just |only |merely )?an? (?:{_AI_EN} )?(?:large )?language model\b",
            rf"\bi(?:'m| am) (?:just |only |merely )?an? {_AI_EN} (?:assistant|model|chatbot)\b",
            rf"\bi(?:'m| am) (?:just |only |merely )?an? {_AI_EN}(?=$|[,.;:!]| and | so | i )",
            rf"\byou(?:'re| are) an? (?:{_AI_EN} )?(?:large )?language model\b",
            r"\b(?:i(?:'m| am)|you(?:'re| are)|as) (?:chatgpt|gpt)\b",
            r"\bi was (?:trained|created|developed|made) by openai\b",
        ]
    )
)

# Unfilled template placeholders, a no-input marker where it does not belong, or a block label
# that leaked into a value ("... 6. 输入: ..." on one line).
_LEFTOVER = re.compile(
    r"\{(?:examples|num_tasks|topic|turns)\}|<无输入>|＜无输入＞|<noinput>"
    r"|[0-9０-９]+\s*[.．]\s*(?:指令|输入|输出|Instruction|Input|Output)\s*[:：]"
)

# Output that only says "nothing": counts as too short whatever its length.
_BLANK_OUTPUTS = {"n/a", "na", "none", "null", "nooutput", "无输出", "无", "空", "不适用"}
_BLANK_STRIP = re.compile(r"[<>＜＞()（）\[\]【】\s_\-。.]")

# Chinese instruction answered in English is fine when English (or another Latin-script language)
# is asked for, or when the task is about code.
_WANTS_LATIN = re.compile(
    r"翻译|英文|英语|english|法语|德语|西班牙语|意大利语|葡萄牙语|拉丁|外语|单词|拼写|缩写",
    re.IGNORECASE,
)
_CODE_HINT = re.compile(
    r"代码|程序|函数|编程|脚本|算法|正则|命令|python|java|c\+\+|c#|sql|html|css|\bjs\b|json|xml"
    r"|shell|bash|linux|\bapi\b",
    re.IGNORECASE,
)
_CODE_OUTPUT = re.compile(
    r"```|^\s*(?:def|class|import|from|return|function|var|let|const|public|private|#include"
    r"|select|insert|for|while|if)\b.*[:;{(=]",
    re.IGNORECASE | re.MULTILINE,
)
_LATIN_LETTERS_MIN = 20
_CJK_SHARE_CHINESE = 0.5  # instruction is Chinese at or above this share of CJK letters
_CJK_SHARE_ENGLISH = 0.1  # output is English below this share, given enough Latin letters

# zh: ASCII punctuation or a closing/infix mark; opening brackets and quotes may start a Chinese
# instruction ("《红楼梦》的作者是谁？").
_OPENERS = set("([{\"'“‘《「『【（〈")
_PUNCT_CATEGORIES_ZH = {"Po", "Pd", "Pc", "Pe", "Pf"}


def _check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0xF900 <= code <= 0xFAFF
        or 0x20000 <= code <= 0x2FA1F
    )


def _visible(text: str) -> int:
    """Letters and digits: punctuation, symbols and spaces do not make a text long enough."""
    return sum(1 for char in text if unicodedata.category(char)[0] in "LN")


def _cjk_share(text: str) -> tuple[float, int]:
    """(CJK characters / letters, number of ASCII Latin letters) of a text."""
    letters = [char for char in text if unicodedata.category(char)[0] == "L"]
    if not letters:
        return 0.0, 0
    cjk = sum(1 for char in letters if _is_cjk(char))
    latin = sum(1 for char in letters if char.isascii())
    return cjk / len(letters), latin


def _addresses_model(text: str) -> bool:
    lowered = text.lower().replace("’", "'")
    if _ADDRESSES_MODEL_ZH.search(re.sub(r"\s+", "", lowered)):
        return True
    return bool(_ADDRESSES_MODEL_EN.search(re.sub(r"\s+", " ", lowered)))


def _output_too_short(output: str) -> bool:
    if _BLANK_STRIP.sub("", output).lower() in _BLANK_OUTPUTS:
        return True
    return _visible(output) < _OUTPUT_MIN


def _has_blacklisted_word(text: str, language: str) -> bool:
    if language == "en":
        return bool(_BLACKLIST_EN.search(text))
    lowered = text.lower()
    return any(word in lowered for word in _BLACKLIST_ZH)


def _starts_with_punctuation(text: str, language: str) -> bool:
    first = text[0]
    if language == "en":
        return first in string.punctuation
    if first in _OPENERS:
        return False
    return first in string.punctuation or unicodedata.category(first) in _PUNCT_CATEGORIES_ZH


def _language_mismatch(task: Task) -> bool:
    instruction_share, _ = _cjk_share(task.instruction)
    if instruction_share < _CJK_SHARE_CHINESE:
        return False
    output_share, output_latin = _cjk_share(task.output)
    if output_latin < _LATIN_LETTERS_MIN or output_share >= _CJK_SHARE_ENGLISH:
        return False
    if _WANTS_LATIN.search(task.instruction):
        return False
    if _CODE_HINT.search(task.instruction) or _CODE_OUTPUT.search(task.output):
        return False
    # An English input ("改正下面句子的语法错误: ...") makes an English answer natural.
    input_share, input_latin = _cjk_share(task.input)
    return not (input_latin >= _LATIN_LETTERS_MIN and input_share < _CJK_SHARE_ENGLISH)


def drop_reason(task: Task, *, language: str) -> str | None:
    """The first rule the task breaks, as a ``REASONS`` code, or None to keep it."""
    _check_language(language)
    instruction = task.instruction.strip()
    output = task.output.strip()
    if any(_LEFTOVER.search(text) for text in (instruction, task.input, output)):
        return "leftover_markup"
    if language == "zh":
        if _visible(instruction) < _INSTRUCTION_MIN_ZH or len(instruction) > _INSTRUCTION_MAX_ZH:
            return "instruction_length"
    else:
        words = len(instruction.split())
        if words < _INSTRUCTION_MIN_WORDS_EN or words > _INSTRUCTION_MAX_WORDS_EN:
            return "instruction_length"
    if _output_too_short(output):
        return "output_too_short"
    if language == "en":
        if not instruction[0].isascii():
            return "non_english"
        # Alpaca: the teacher tends to prepend "Write a program" to anything, leaving it unclear
        # whether the answer is code or the result.
        if instruction.startswith("Write a program"):
            return "write_a_program"
    if _starts_with_punctuation(instruction, language):
        return "starts_with_punctuation"
    if _has_blacklisted_word(instruction, language):
        return "blacklisted_word"
    if _addresses_model(instruction) or _addresses_model(output):
        return "addresses_model"
    if language == "zh" and _language_mismatch(task):
        return "language_mismatch"
    return None


def dialogue_drop_reason(turns: Sequence[dict], language: str) -> str | None:
    """The first rule a parsed dialogue breaks, with the single-turn reason codes, or None.

    Human turns play the instruction: the blacklist applies to them, and each needs 2 letters
    ("谢谢" is a fine follow-up). Assistant turns need 2 letters too. No turn may speak as the model
    or carry leftover markup. The blacklist is not applied to assistant turns: answers in a
    dialogue about music or spreadsheets mention "music" or "文件" legitimately.
    """
    _check_language(language)
    for turn in turns:
        value = str(turn.get("value", "")).strip()
        human = turn.get("from") == "human"
        if _LEFTOVER.search(value):
            return "leftover_markup"
        if human and _visible(value) < _OUTPUT_MIN:
            return "instruction_length"
        if not human and _output_too_short(value):
            return "output_too_short"
        if human and _has_blacklisted_word(value, language):
            return "blacklisted_word"
        if _addresses_model(value):
            return "addresses_model"
    return None
