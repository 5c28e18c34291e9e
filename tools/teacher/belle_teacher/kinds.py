"""The eight kinds of the teacher's task family: how each generates a task and how each
recognises an instruction of its kind and recomputes the answer (`tasks.py` is the API over them).

Generation: data from a seeded `random.Random`, worded by `_word` with a random phrasing, lead-in,
politeness verb and closing clause from `wording.py`, the data inline, after a colon, in the input
field, or (numbers) inside a short scene. Parsing: keyword triggers per kind, then the data from the
input, a quoted part, the text after the last colon, or a list / expression / single integer in the
instruction; anything that does not fit (a table, a formula, a decimal) is not the kind's.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass
from typing import Callable

from belle_teacher import wording as W
from belle_teacher.numerals import LIMIT, to_chinese


# ------------------------------------------------------------------------------------ wording


def _is_question(template: str) -> bool:
    return template.endswith(("？", "?"))


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _word(rng: random.Random, lang: str, kind: str, data: str, fills: dict[str, str], *,
          scene: str | None = None, modes=(("inline", 55), ("colon", 20), ("input", 25))) -> tuple[str, str]:
    """Put `data` into a random phrasing of `kind`: returns (instruction, input)."""
    phr = W.PHRASINGS[kind][lang]
    names, weights = zip(*modes)
    mode = rng.choices(names, weights)[0]
    if scene is not None:
        mode = "scene"
    pool = {"inline": "inline", "colon": "ref", "input": "ref", "scene": "scene"}[mode]
    template = rng.choice(phr[pool])
    core = template.format(x=data, **fills)
    question = _is_question(template)
    zh = lang == "zh"
    lead = rng.choice(W.ZH_LEADS if zh else W.EN_LEADS)
    polite = "" if question else rng.choice(W.ZH_POLITE if zh else W.EN_POLITE)
    clause = rng.choice(W.ZH_CLAUSES if zh else W.EN_CLAUSES)
    if zh:
        head = (scene.format(x=data) + "，" if mode == "scene" else "") + polite + core
        if mode == "colon":
            body = head.rstrip("？") + ("，" + clause if clause and not question else "") + "：" + data
        elif question:
            body = head + (clause + "。" if clause else "")
        else:
            body = head + ("，" + clause if clause else "") + "。"
        return lead + body, data if mode == "input" else ""
    sentence = _cap(polite + core)
    if mode == "scene":
        sentence = scene.format(x=data) + " " + sentence
    if mode == "colon":
        return lead + (clause + " " if clause else "") + sentence.rstrip("?") + ": " + data, ""
    body = sentence + ("" if question else ".") + (" " + clause if clause else "")
    return lead + body, data if mode == "input" else ""


def _phrase(rng: random.Random, lang: str, words: tuple[int, int]) -> str:
    n = rng.randint(*words)
    if lang == "en":
        return " ".join(rng.choice(W.EN_WORDS) for _ in range(n))
    parts = [rng.choice(W.ZH_WORDS)]
    for _ in range(n - 1):
        parts.append(rng.choice(W.ZH_LINKS) + rng.choice(W.ZH_WORDS))
    return "".join(parts)


def _number_list(rng: random.Random, lang: str, low: int, high: int) -> tuple[list[int], str]:
    numbers = rng.sample(range(low, high + 1), rng.randint(4, 6))
    sep = rng.choice(["、", "，", ", "]) if lang == "zh" else ", "
    return numbers, sep.join(map(str, numbers))


def _scene(rng: random.Random, lang: str, share: float) -> str | None:
    return rng.choice(W.ZH_SCENES if lang == "zh" else W.EN_SCENES) if rng.random() < share else None


# ------------------------------------------------------------------------------- data parsing

_QUOTED = re.compile(r"“([^”]+)”|\"([^\"]+)\"|「([^」]+)」|『([^』]+)』|‘([^’]+)’")
_INT = re.compile(r"(?<![0-9A-Za-z.])-?\d+(?![0-9])")
_DECIMAL = re.compile(r"\d[.．]\d")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


def _text_data(instruction: str, input: str) -> str | None:
    """The text a text task works on: the input, else a quoted part, else what follows the last colon."""
    if input.strip():
        return input.strip()
    match = _QUOTED.search(instruction)
    if match:
        return next(g for g in match.groups() if g is not None)
    parts = re.split(r"[:：]", instruction)
    if len(parts) > 1 and parts[-1].strip():
        return parts[-1].strip()
    return None


def _numbers(instruction: str, input: str) -> list[int] | None:
    """Integers of the data (the input if there is one, else the instruction); None if any is a decimal."""
    source = input if input.strip() else instruction
    if _DECIMAL.search(source):
        return None
    return [int(n) for n in _INT.findall(source)]


def _one_number(instruction: str, input: str) -> int | None:
    """The one integer of the task: the whole input, else the only integer in the instruction."""
    if input.strip():
        return int(input.strip()) if re.fullmatch(r"-?\d+", input.strip()) else None
    numbers = _numbers(instruction, input)
    return numbers[0] if numbers is not None and len(set(numbers)) == 1 else None


_LIST = re.compile(r"-?\d+(?:(?:\s*[,，、;；]\s*|\s*(?:\band\b|和)\s*|\s+)-?\d+)+")


def _number_list_of(instruction: str, input: str) -> list[int] | None:
    """A list of two or more integers: the whole input (brackets allowed), else the longest list
    written in the instruction. Numbers scattered through a sentence or a table are no list."""
    if input.strip():
        text = input.strip().strip("[]［］()（）")
        if not _LIST.fullmatch(text) or _DECIMAL.search(text):
            return None
    else:
        lists = [m.group(0) for m in _LIST.finditer(instruction)]
        if not lists or _DECIMAL.search(instruction):
            return None
        text = max(lists, key=len)
    return [int(n) for n in re.findall(r"-?\d+", text)]


def _has(pattern: str, text: str) -> bool:
    return re.search(pattern, text, re.IGNORECASE) is not None


def language_of(text: str) -> str:
    """zh if the text has any CJK character, else en."""
    return "zh" if _CJK.search(text) else "en"


# ------------------------------------------------------------------------------------- kinds


@dataclass(frozen=True)
class Kind:
    name: str
    generate: Callable[[random.Random, str], tuple[str, str, str]]    # (rng, language) -> (instruction, input, output)
    parse: Callable[[str, str, str], str | None]                     # (instruction, input, language) -> answer


def _gen_numeral(rng, lang):
    digits = rng.choices([2, 3, 4, 5], [3, 4, 4, 1])[0]
    n = rng.randint(max(11, 10 ** (digits - 1)), 10**digits - 1)
    instruction, input = _word(rng, lang, "numeral", str(n), {}, scene=_scene(rng, lang, 0.35))
    return (instruction, input, to_chinese(n))


def _parse_numeral(instruction, input, lang):
    if not _has(r"中文数字|汉字|中文写法|中文读法|中文的数字|大写数字|中文大写|用中文写|chinese numeral|chinese character",
                instruction):
        return None
    n = _one_number(instruction, input)
    if n is None or abs(n) >= LIMIT:
        return None
    return to_chinese(n, formal=_has(r"大写", instruction))


def _gen_reverse(rng, lang):
    data = _phrase(rng, lang, (2, 3) if lang == "zh" else (1, 2))
    instruction, input = _word(rng, lang, "reverse", data, {})
    return (instruction, input, data[::-1])


def _parse_reverse(instruction, input, lang):
    if not _has(r"倒过来|反过来|颠倒|反转|倒着|从后往前|相反的顺序|逆序|倒序|倒写|\breverse|\bbackwards?\b", instruction):
        return None
    data = _text_data(instruction, input)
    return data[::-1] if data else None


_DESCENDING = r"从大到小|由大到小|降序|descending|largest to smallest|biggest to smallest|highest to lowest"


def _gen_sort(rng, lang):
    numbers, data = _number_list(rng, lang, 1, 99)
    desc = rng.random() < 0.5
    if lang == "zh":
        fills = {"d": "从大到小" if desc else "从小到大", "D": "降序" if desc else "升序"}
    else:
        fills = {"d": "largest to smallest" if desc else "smallest to largest", "D": "descending" if desc else "ascending"}
    instruction, input = _word(rng, lang, "sort", data, fills)
    return (instruction, input, ", ".join(map(str, sorted(numbers, reverse=desc))))


def _parse_sort(instruction, input, lang):
    if not _has(r"排序|排列|排好|排个序|排一下|从小到大|从大到小|由小到大|由大到小|升序|降序|\bsort|ascending|descending|"
                r"\barrange|\border\b|smallest to largest|largest to smallest", instruction):
        return None
    numbers = _number_list_of(instruction, input)
    if numbers is None:
        return None
    return ", ".join(map(str, sorted(numbers, reverse=_has(_DESCENDING, instruction))))


_EXPRESSION = re.compile(r"-?\d+(?:\s*[-+*×xX]\s*\d+)+")


def _evaluate(expression: str) -> int:
    """+ - × with the usual precedence (integers only)."""
    expression = expression.strip()
    sign = -1 if expression.startswith("-") else 1
    tokens = re.findall(r"\d+|[-+*×xX]", expression.lstrip("-"))
    terms, op = [], "+"
    term = None
    for token in tokens:
        if token.isdigit():
            value = int(token)
            term = value if term is None else term * value
        elif token in "*×xX":
            continue
        else:
            terms.append((op, term))
            op, term = token, None
    terms.append((op, term))
    total = 0
    for index, (op, term) in enumerate(terms):
        term = term * sign if index == 0 else term
        total = total + term if op == "+" else total - term
    return total


def _gen_arithmetic(rng, lang):
    while True:
        count = rng.choice([2, 2, 3])
        ops = [rng.choice("+-*") for _ in range(count - 1)]
        values = [rng.randint(2, 12) if (i and ops[i - 1] == "*") or (i < len(ops) and ops[i] == "*")
                  else rng.randint(2, 60) for i in range(count)]
        times = "×" if lang == "zh" else rng.choice(["*", "×"])
        spaced = lang == "en" or rng.random() < 0.6
        text = str(values[0])
        for op, value in zip(ops, values[1:]):
            symbol = times if op == "*" else op
            text += f" {symbol} {value}" if spaced else f"{symbol}{value}"
        result = _evaluate(text)
        if abs(result) >= 10:  # the generator drops outputs under two letters or digits
            break
    instruction, input = _word(rng, lang, "arithmetic", text, {})
    return (instruction, input, str(result))


def _parse_arithmetic(instruction, input, lang):
    if not _has(r"计算|等于|多少|算|求|值|结果|得数|几|calculate|compute|evaluate|what is|what's|equal|result|work out|"
                r"value|sum", instruction):
        return None
    source = input.strip() if input.strip() else instruction
    if re.search(r"[÷/()（）^²³]|\d[.．]\d", source):
        return None
    match = _EXPRESSION.search(source)
    if match is None or (input.strip() and not re.fullmatch(r"\s*=?\s*[?？]?\s*", source[match.end():] + source[:match.start()])):
        return None     # an input must be the expression alone (an optional "= ?" aside)
    return str(_evaluate(match.group(0)))


def _gen_count(rng, lang):
    if lang == "zh":
        data = _phrase(rng, lang, (5, 7))
        while not 10 <= len(data) <= 18:
            data = _phrase(rng, lang, (5, 7))
        answer = len(data)
    else:
        data = _phrase(rng, lang, (10, 14))
        answer = len(data.split())
    instruction, input = _word(rng, lang, "count", data, {})
    return (instruction, input, str(answer))


def _parse_count(instruction, input, lang):
    words = _has(r"how many words|count the words|number of words|word count", instruction)
    # "有几个字", not "这几个字" (which a reverse task may say).
    chars = _has(r"(有|共|由)(多少|几)个字|(多少|几)个汉字|字数|汉字个数|汉字数量", instruction)
    if words == chars:
        return None
    data = _text_data(instruction, input)
    if not data:
        return None
    if words:
        return str(len(re.findall(r"[A-Za-z0-9]+(?:['’-][A-Za-z0-9]+)*", data)))
    return str(sum(1 for ch in data if not ch.isspace() and unicodedata.category(ch)[0] not in "PSZ"))


def _gen_case(rng, lang):
    upper = rng.random() < 0.5
    words = _phrase(rng, "en", (2, 3))
    data = words if upper else rng.choice([words.upper(), words.title()])
    if upper and rng.random() < 0.3:
        data = words.title()
    fills = {"c": ("大写" if upper else "小写") if lang == "zh" else ("uppercase" if upper else "lowercase")}
    instruction, input = _word(rng, lang, "case", data, fills)
    return (instruction, input, data.upper() if upper else data.lower())


def _parse_case(instruction, input, lang):
    upper = _has(r"大写|uppercase|upper case|capital letters|all caps|capitals", instruction)
    lower = _has(r"小写|lowercase|lower case|small letters", instruction)
    if upper == lower:
        return None
    data = _text_data(instruction, input)
    if not data or not re.search(r"[A-Za-z]", data):
        return None
    return data.upper() if upper else data.lower()


_MAX = r"最大|最高|最多|largest|biggest|greatest|maximum|highest"
_MIN = r"最小|最低|最少|smallest|least|minimum|lowest"


def _gen_extreme(rng, lang):
    numbers, data = _number_list(rng, lang, 10, 99)
    high = rng.random() < 0.5
    if lang == "zh":
        fills = {"m": "最大" if high else "最小", "v": "最大值" if high else "最小值"}
    else:
        fills = {"m": "largest" if high else "smallest", "v": "maximum" if high else "minimum"}
    instruction, input = _word(rng, lang, "extreme", data, fills)
    return (instruction, input, str(max(numbers) if high else min(numbers)))


def _parse_extreme(instruction, input, lang):
    high, low = _has(_MAX, instruction), _has(_MIN, instruction)
    numbers = _number_list_of(instruction, input) if high != low else None
    if numbers is None:
        return None
    return str(max(numbers) if high else min(numbers))


def _gen_parity(rng, lang):
    n = rng.randint(2, 9999)
    instruction, input = _word(rng, lang, "parity", str(n), {}, scene=_scene(rng, lang, 0.3))
    return (instruction, input, _parity_word(n, lang))


def _parity_word(n: int, lang: str) -> str:
    if lang == "zh":
        return "偶数" if n % 2 == 0 else "奇数"
    return "even" if n % 2 == 0 else "odd"


def _parse_parity(instruction, input, lang):
    if not (_has(r"奇数|偶数|奇偶|单数|双数|parity", instruction) or
            (_has(r"\bodd\b", instruction) and _has(r"\beven\b", instruction))):
        return None
    n = _one_number(instruction, input)
    return None if n is None else _parity_word(n, lang)


# Parsing order matters where triggers overlap: sort before extreme ("smallest to largest"), count
# before numeral (汉字), arithmetic first but only with an operator in the data.
KINDS: dict[str, Kind] = {k.name: k for k in [
    Kind("arithmetic", _gen_arithmetic, _parse_arithmetic),
    Kind("sort", _gen_sort, _parse_sort),
    Kind("extreme", _gen_extreme, _parse_extreme),
    Kind("parity", _gen_parity, _parse_parity),
    Kind("count", _gen_count, _parse_count),
    Kind("case", _gen_case, _parse_case),
    Kind("numeral", _gen_numeral, _parse_numeral),
    Kind("reverse", _gen_reverse, _parse_reverse),
]}
