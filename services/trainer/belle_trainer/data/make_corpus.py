"""Build `tokenizer_corpus.txt`, the text the tiny model's byte-level BPE tokenizer is trained on.

    python services/trainer/belle_trainer/data/make_corpus.py        # rewrites tokenizer_corpus.txt

Run from anywhere inside the repository; the output is deterministic (fixed seed), so a rerun on an
unchanged repository gives the same file. The corpus is committed: `belle model init` never runs this.

What goes in, and why:
- the datagen service's bundled seed tasks, prompt templates and dialogue topics, rendered partly as
  BELLE conversations (`Human: ...` / `Assistant: ...`), so the scaffolding and everyday Chinese and
  English become single tokens;
- the offline teacher's wording (phrasings, scenes, vocabularies, reply texts) and tasks built from
  that wording with their answers (Chinese numerals, sorted lists, sums, reversed phrases), weighted
  up, because the tiny model is trained and evaluated on exactly those texts and they should
  tokenize compactly;
- a few pages of our own mixed text below: digits, dates, money, full-width punctuation, formal
  numerals (壹贰叁), code, JSON, emoji.
Those files are read as plain text (the teacher's Python only through `ast`, never imported): a
service does not depend on another service or tool at run time.

Documents are separated by a line break triple (`DOC_SEPARATOR`); a document never contains one.
"""

from __future__ import annotations

import ast
import json
import random
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[3]
OUTPUT = HERE / "tokenizer_corpus.txt"
DOC_SEPARATOR = "\n\n\n"
SEED = 20240601
TEACHER_TASKS = {"zh": 900, "en": 400}

DATAGEN = REPO / "services" / "datagen" / "belle_datagen" / "data"
TEACHER = REPO / "tools" / "teacher" / "belle_teacher"

# ------------------------------------------------------------------------------ our own text

OWN_TEXT = [
    # Everyday Chinese.
    "今天早上八点半，我们在学校门口集合，然后一起坐大巴去植物园参观。老师提醒大家带好水杯、帽子和笔记本。",
    "周末天气晴朗，最高气温二十六摄氏度，最低气温十五摄氏度，适合户外活动。傍晚可能有小雨，出门记得带伞。",
    "这家小店的牛肉面很有名：汤头浓郁，面条劲道，一碗只要十八元。每天中午十二点前后总要排很久的队。",
    "学习一门新技能，最重要的是坚持。每天练习半小时，比周末突击五个小时效果更好。",
    "请把会议纪要整理成三点：一、项目进度；二、遇到的问题；三、下一步计划。每点不超过五十字。",
    "妈妈说，做红烧肉要先把五花肉焯水，再用冰糖炒出糖色，最后加酱油、料酒和八角，小火慢炖一个小时。",
    "地铁二号线的末班车是晚上十一点零五分。如果错过了，可以改乘夜间公交或者打车回家。",
    "图书馆每周一闭馆，其余时间上午九点开门，晚上九点关门。借书最长可以借三十天，可以续借一次。",
    "他从小就喜欢天文，十岁那年用攒下的零花钱买了第一台望远镜，第一次看到了土星的光环。",
    "写作文的时候，先列提纲，再动笔。开头要点题，中间用具体的例子说明观点，结尾呼应开头。",
    "长江全长约六千三百公里，是中国第一长河；黄河全长约五千四百六十四公里，被称为中华民族的母亲河。",
    "中国的四大发明是造纸术、印刷术、火药和指南针，它们对世界文明的发展产生了深远的影响。",
    "春节、元宵节、清明节、端午节、中秋节和重阳节都是中国的传统节日。端午节要吃粽子、赛龙舟。",
    "光合作用是绿色植物利用光能，把二氧化碳和水转化为有机物并释放氧气的过程。",
    "水在一个标准大气压下，零摄氏度结冰，一百摄氏度沸腾。",
    "一年有十二个月，三百六十五天；闰年的二月有二十九天，全年三百六十六天。",
    "小王问：“这道题怎么做？”小李回答：“先把括号里的算出来，再算乘除，最后算加减。”",
    "我们的目标是：让每一位用户都能用上自己的中文对话模型——从数据生成、训练、量化到评测，全部在本地完成。",
    "《论语》里说：“学而时习之，不亦说乎？”意思是学了知识按时温习，不也是很愉快的吗？",
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。",
    "人工智能、机器学习、深度学习、神经网络、自然语言处理、大语言模型、指令微调、强化学习。",
    "数据集里每条样本包括指令、输入和输出三个字段；没有输入的样本，输入字段留空。",
    "训练时，损失只计算在助手的回答上，用户的问题不参与损失计算。",
    "模型的回答要准确、简洁、有礼貌。遇到不知道的问题，要如实说明，不要编造。",
    "请用一句话概括这段文字的主要内容，并给它起一个合适的标题。",
    "把下面的句子翻译成英文：我明天要去北京出差，大概周五回来。",
    "这个周末你有什么安排？我打算去爬山，顺便拍一些秋天的照片。",
    "医生建议每天至少喝八杯水，保证七到八个小时的睡眠，每周运动三次以上，每次不少于三十分钟。",
    "问：一个长方形的长是八厘米，宽是五厘米，它的面积是多少？答：八乘以五等于四十，面积是四十平方厘米。",
    "问：小明有十二个苹果，分给三个朋友，每人分几个？答：十二除以三等于四，每人分四个。",
    "甲、乙、丙三个人排队，甲不在第一位，乙不在最后一位，一共有几种排法？",
    # Everyday English.
    "The meeting starts at 9:30 a.m. on Monday, March 4th. Please bring your laptop and the Q1 report.",
    "She finished the marathon in 3 hours, 42 minutes and 15 seconds, about ten minutes faster than last year.",
    "To make a cup of tea, boil the water, warm the pot, add one teaspoon of leaves per cup and wait three minutes.",
    "The train leaves at 6:15 pm from platform 2. Tickets cost $12.50 one way or $20 for a return.",
    "Good writing is clear writing: short sentences, concrete words, and one idea per paragraph.",
    "The model should answer politely and honestly. If it does not know something, it should say so.",
    "Human: Can you help me plan a three-day trip to Hangzhou?\n\nAssistant: Of course! On day one, walk around West Lake.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen; it happens in the chloroplasts.",
    "The Great Wall of China is more than 20,000 kilometers long if all of its branches are counted.",
    "Please summarize the following paragraph in one sentence, then suggest a short title for it.",
    "It's a beautiful day, isn't it? Let's go for a walk in the park and have lunch by the river.",
    "Translate the sentence into Chinese: I will visit my grandparents next weekend.",
    "Step 1: read the question. Step 2: write down what you know. Step 3: solve it. Step 4: check your answer.",
    "We'd like to thank everyone who contributed; without you this project wouldn't have been possible.",
    "Fine-tuning adapts a pretrained language model to follow instructions, using a small set of examples.",
    "LoRA adds small low-rank matrices to the attention and MLP projections and trains only those.",
    # Numbers, money, dates, units, formal numerals.
    "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 25 30 42 50 64 75 99 100 128 256 512 1000 1024 2048 4096",
    "3.14159 2.71828 1.41421 0.5 0.25 0.125 -1 -42 +7 1e-5 6.02e23 50% 99.9% 12.5% 3/4 1/3",
    "2024年6月1日 2023-12-31 12:00:00 18:30 1999年 21世纪 第3章 第12页 3号楼 502室 ¥128.00 $19.99 €5 £20",
    "零 一 二 三 四 五 六 七 八 九 十 百 千 万 亿 两 半 第一 第二 第三 一半 三分之一 百分之五十 负五",
    "壹 贰 叁 肆 伍 陆 柒 捌 玖 拾 佰 仟 万 亿 元 角 分 整：人民币壹万贰仟叁佰肆拾伍元陆角整。",
    "三百零五 一千零八 一万零一十 十五 二十 九十九 一百 一千 一万 十万 一百万 一亿 一亿零一千",
    "5 km, 3.5 kg, 250 ml, 100 m², 36.5°C, 60 km/h, 8 GB, 512 MB, 1.5 TB, 220 V, 50 Hz",
    "５公里、３.５千克、２５０毫升、１００平方米、３６.５摄氏度、每小时６０公里",
    "1 + 1 = 2, 2 × 3 = 6, 10 - 4 = 6, 12 ÷ 4 = 3, 2^10 = 1024, √16 = 4, 7 > 5, 3 < 8, x ≤ y, a ≠ b, ±1",
    "（一）（二）（三）①②③④⑤ 1) 2) 3) a. b. c. i. ii. iii. A、B、C、D",
    # Punctuation, both widths.
    "，。！？；：“”‘’（）《》【】、…—·～「」『』〈〉",
    ", . ! ? ; : \" ' ( ) [ ] { } < > / \\ | @ # $ % ^ & * _ - + = ` ~",
    # Emoji and rare characters.
    "谢谢你！😊 太棒了 👍 加油 💪 生日快乐 🎂🎉 下雨了 🌧️ 好热 ☀️ 爱心 ❤️ 笑哭 😂 思考 🤔 火箭 🚀",
    "Great job! 🎉 See you tomorrow 👋 Coffee time ☕ Let's go 🚀 Well done ✅ Oops ❌ Hmm 🤔",
    "生僻字：饕餮 魑魅魍魉 耄耋 龘 靐 齉 犇 猋 骉 麤 毳 淼 鑫 焱 垚 嫑 嘦 円 氵 丶",
    # Code.
    "def fibonacci(n: int) -> list[int]:\n    \"\"\"The first n Fibonacci numbers.\"\"\"\n    a, b = 0, 1\n"
    "    out = []\n    for _ in range(n):\n        out.append(a)\n        a, b = b, a + b\n    return out",
    "import json\n\nwith open(\"data.jsonl\", encoding=\"utf-8\") as f:\n    rows = [json.loads(line) for line in f]\n"
    "print(len(rows), rows[0][\"conversations\"][0][\"value\"])",
    "for i in range(10):\n    if i % 2 == 0:\n        print(f\"{i} 是偶数\")\n    else:\n        print(f\"{i} 是奇数\")",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n"
    "        self.items.append(item)\n\n    def pop(self):\n        return self.items.pop()",
    "SELECT name, COUNT(*) AS n FROM jobs WHERE status = 'succeeded' GROUP BY name ORDER BY n DESC LIMIT 10;",
    "{\"conversations\": [{\"from\": \"human\", \"value\": \"你好\"}, {\"from\": \"assistant\", \"value\": \"你好！有什么可以帮你？\"}]}",
    "{\"instruction\": \"把305写成中文数字\", \"input\": \"\", \"output\": \"三百零五\"}",
    "$ pip install -e services/trainer\n$ belle model init --arch llama --out models/tiny\n$ ls models/tiny",
    "function add(a, b) {\n  return a + b;\n}\nconsole.log(add(2, 3)); // 5",
    "#include <stdio.h>\nint main(void) {\n    printf(\"Hello, world!\\n\");\n    return 0;\n}",
    "git commit -m \"fix: handle empty input\" && git push origin main",
    "x = [3, 1, 2]\nx.sort()\nassert x == [1, 2, 3]\nprint(sorted([5, 2, 9], reverse=True))",
]

# ------------------------------------------------------------------------------ the teacher's wording


def _module_literals(path: Path) -> dict[str, object]:
    """Module-level `NAME = <literal>` (and `NAME = "...".split()`) assignments of a Python file."""
    values: dict[str, object] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, value = node.targets[0], node.value
        else:
            continue
        try:
            values[target.id] = ast.literal_eval(value)
        except ValueError:
            # ZH_WORDS = ("..." "...").split()
            if (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "split"
                    and not value.args):
                try:
                    values[target.id] = ast.literal_eval(value.func.value).split()
                except ValueError:
                    pass
    return values


_CJK = re.compile(r"[\u3400-\u9fff]")


def _cjk_strings(path: Path) -> list[str]:
    """Every string constant with Chinese in it (reply texts, labels, regex alternatives as words)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _CJK.search(node.value):
            text = re.sub(r"\\[a-zA-Z]|[|()?*+\[\]^$]", " ", node.value)
            found.append(re.sub(r" +", " ", text).strip())
    return found


_ZH_DIGITS = "零一二三四五六七八九"
_ZH_FORMAL = "零壹贰叁肆伍陆柒捌玖"


def chinese_numeral(n: int, formal: bool = False) -> str:
    """n (0 <= n < 10**12) in Chinese numerals; our own small version for the corpus."""
    digits = _ZH_FORMAL if formal else _ZH_DIGITS
    units = ("", "拾", "佰", "仟") if formal else ("", "十", "百", "千")
    if n == 0:
        return digits[0]

    def section(value: int) -> str:
        out, zero = "", False
        for power in (3, 2, 1, 0):
            d = value // 10**power % 10
            if d == 0:
                zero = bool(out)
            else:
                out += (digits[0] if zero else "") + digits[d] + units[power]
                zero = False
        return out

    parts, rest = [], n
    while rest:
        parts.append(rest % 10000)
        rest //= 10000
    text = ""
    for index in range(len(parts) - 1, -1, -1):
        value = parts[index]
        if value == 0:
            continue
        if text and (value < 1000 or parts[index + 1] == 0):
            text += digits[0]
        text += section(value) + ("", "万", "亿")[index]
    if not formal and text.startswith("一十"):
        text = text[1:]
    return text


def _teacher_tasks(rng: random.Random, wording: dict, language: str, count: int) -> list[str]:
    """`count` tasks in the teacher's wording with their answers, as BELLE conversations."""
    zh = language == "zh"
    phrasings = wording["PHRASINGS"]
    leads = wording["ZH_LEADS" if zh else "EN_LEADS"]
    polite = wording["ZH_POLITE" if zh else "EN_POLITE"]
    clauses = wording["ZH_CLAUSES" if zh else "EN_CLAUSES"]
    scenes = wording["ZH_SCENES" if zh else "EN_SCENES"]
    zh_words, en_words = wording["ZH_WORDS"], wording["EN_WORDS"]

    def number() -> int:
        return rng.choice([rng.randint(0, 99), rng.randint(100, 9999), rng.randint(10000, 10**9)])

    def numbers() -> list[int]:
        return [rng.randint(-20, 999) for _ in range(rng.randint(3, 7))]

    def phrase() -> str:
        if zh:
            return "".join(rng.choice(zh_words) for _ in range(rng.randint(2, 3)))
        return " ".join(rng.choice(en_words) for _ in range(rng.randint(1, 3)))

    out = []
    for _ in range(count):
        kind = rng.choice(list(phrasings))
        fills: dict[str, str] = {}
        if kind in ("numeral", "parity"):
            n = number()
            data = str(n)
            answer = chinese_numeral(n) if kind == "numeral" else (
                ("偶数" if n % 2 == 0 else "奇数") if zh else ("even" if n % 2 == 0 else "odd"))
        elif kind == "reverse":
            data = phrase()
            answer = data[::-1]
        elif kind in ("sort", "extreme"):
            values = numbers()
            data = rng.choice(["、", "，", ", "] if zh else [", "]).join(map(str, values))
            high = rng.random() < 0.5
            if kind == "sort":
                fills = ({"d": "从大到小" if high else "从小到大", "D": "降序" if high else "升序"} if zh else
                         {"d": "largest to smallest" if high else "smallest to largest",
                          "D": "descending" if high else "ascending"})
                answer = ", ".join(map(str, sorted(values, reverse=high)))
            else:
                fills = ({"m": "最大" if high else "最小", "v": "最大值" if high else "最小值"} if zh else
                         {"m": "largest" if high else "smallest", "v": "maximum" if high else "minimum"})
                answer = str(max(values) if high else min(values))
        elif kind == "arithmetic":
            terms = [rng.randint(1, 99) for _ in range(rng.randint(2, 4))]
            ops = [rng.choice("+-") for _ in terms[1:]]
            data = str(terms[0]) + "".join(f" {op} {t}" for op, t in zip(ops, terms[1:]))
            answer = str(eval(data))  # our own digits and + - only
        elif kind == "count":
            data = phrase() if zh else " ".join(rng.choice(en_words) for _ in range(rng.randint(3, 8)))
            answer = str(len(data) if zh else len(data.split()))
        else:  # case
            data = " ".join(rng.choice(en_words) for _ in range(rng.randint(2, 3)))
            upper = rng.random() < 0.5
            fills = {"c": ("大写" if upper else "小写") if zh else ("uppercase" if upper else "lowercase")}
            answer = data.upper() if upper else data.lower()
        pool = phrasings[kind][language]
        mode = rng.choice(["inline", "inline", "ref"] + (["scene"] if "scene" in pool else []))
        template = rng.choice(pool[mode])
        core = template.format(x=data, **fills)
        question = core.endswith(("？", "?"))
        clause = rng.choice(clauses)
        if zh:
            head = (rng.choice(scenes).format(x=data) + "，" if mode == "scene" else "")
            head += ("" if question else rng.choice(polite)) + core
            if mode == "ref":
                text = head.rstrip("？") + "：" + data
            else:
                text = head + ("" if question else "，" + clause if clause else "")
            text = rng.choice(leads) + text
        else:
            sentence = ("" if question else rng.choice(polite)) + core
            sentence = sentence[:1].upper() + sentence[1:]
            if mode == "scene":
                sentence = rng.choice(scenes).format(x=data) + " " + sentence
            if mode == "ref":
                text = sentence.rstrip("?") + ": " + data
            else:
                text = sentence + ("" if question else ".") + (" " + clause if clause else "")
            text = rng.choice(leads) + text
        out.append(f"Human: {text}\n\nAssistant: {answer}")
    return out


# ------------------------------------------------------------------------------ datagen's data


def _seed_documents(rng: random.Random) -> list[str]:
    """Seed tasks: as instruction/input/output blocks and as (one- and two-turn) BELLE conversations."""
    docs = []
    for name in ("seed_tasks_zh.jsonl", "seed_tasks_en.jsonl"):
        zh = name.endswith("zh.jsonl")
        labels = ("指令", "输入", "输出") if zh else ("Instruction", "Input", "Output")
        rows = [json.loads(line) for line in (DATAGEN / name).read_text(encoding="utf-8").splitlines() if line.strip()]
        turns = []
        for index, row in enumerate(rows, 1):
            for instance in row["instances"]:
                question = row["instruction"] + ("\n" + instance["input"] if instance["input"] else "")
                turns.append(f"Human: {question}\n\nAssistant: {instance['output']}")
                if index % 3 == 0:
                    docs.append(f"{index}. {labels[0]}: {row['instruction']}\n{index}. {labels[1]}:\n"
                                f"{instance['input'] or ('<无输入>' if zh else '<noinput>')}\n"
                                f"{index}. {labels[2]}:\n{instance['output']}")
        rng.shuffle(turns)
        while turns:
            take = rng.choice([1, 1, 2])
            docs.append("\n".join(turns[:take]))
            del turns[:take]
    return docs


def _datagen_texts() -> list[str]:
    docs = []
    for name in sorted(DATAGEN.glob("*.txt")):
        docs.append(name.read_text(encoding="utf-8").strip())
    return docs


# ------------------------------------------------------------------------------ assembly


def build() -> str:
    rng = random.Random(SEED)
    wording = _module_literals(TEACHER / "wording.py")
    docs: list[str] = list(OWN_TEXT)
    docs += _datagen_texts()
    docs += _seed_documents(rng)
    for name in ("wording.py", "kinds.py", "replies.py", "noise.py", "numerals.py"):
        docs.append("\n".join(_cjk_strings(TEACHER / name)))
    for language, count in TEACHER_TASKS.items():
        tasks = _teacher_tasks(rng, wording, language, count)
        # Every fourth group of four is one multi-turn conversation, the rest one turn a document.
        for start in range(0, len(tasks), 4):
            group = tasks[start:start + 4]
            docs.extend(["\n".join(group)] if start % 16 == 0 else group)
    for n in range(0, 2000, 7):
        docs.append(f"{n} = {chinese_numeral(n)}，大写：{chinese_numeral(n, formal=True)}")
    docs = [re.sub(r"\n{3,}", "\n\n", doc.strip()) for doc in docs if doc.strip()]
    return DOC_SEPARATOR.join(docs) + "\n"


def main() -> None:
    text = build()
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"{OUTPUT}: {len(text.encode('utf-8'))} bytes, {text.count(DOC_SEPARATOR) + 1} documents")


if __name__ == "__main__":
    main()
