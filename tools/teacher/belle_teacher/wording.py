"""The words of the task family: instruction phrasings, openers, closing clauses and vocabularies.

Kept apart from the logic in `tasks.py` so the wording can be read (and extended) at a glance.
Why so many pieces: a generator de-duplicates instructions at ROUGE-L 0.7, and digits count as one
token, so "把305写成中文数字" and "把88写成中文数字" are near-duplicates. Variety therefore has to come
from the wording: a phrasing per kind, an optional lead-in, an optional politeness verb, an optional
closing clause, sometimes a short scene around the number. Two instructions of one kind rarely share
enough of these pieces to pass 0.7 (tests/unit/test_teacher.py measures it).

Template conventions:
- `{x}` is where the data goes (a number, a quoted phrase, a list, an expression).
- `{d}` / `{D}` in sort templates: the direction as 从小到大 / 升序 (en: smallest to largest / ascending).
- A template ending in a question mark is a question: it gets no politeness verb in front.
- "inline" templates carry `{x}`; "ref" templates point at data given after a colon or in the input.
- Nothing here contains digits or words the generator's filters reject (图片, 链接, file, map, ...).
"""

from __future__ import annotations

ZH_LEADS = ["", "", "", "小练习：", "题目：", "考考你：", "热身一下：", "来做一道题：", "任务：", "练一练："]
ZH_POLITE = ["", "", "请", "请你", "麻烦你", "帮我", "劳驾你", "试着", "我想请你", "现在请你", "接下来请"]
ZH_CLAUSES = ["", "", "只给出答案", "直接写出结果", "不需要解释", "答案尽量简洁", "不用写过程",
              "只输出结果，不要加别的内容", "把结果单独写出来", "别写多余的话", "告诉我最终答案就行"]

EN_LEADS = ["", "", "", "Quick task: ", "Exercise: ", "Practice: ", "Here is a small task. ", "Warm-up: ",
            "A simple one: "]
EN_POLITE = ["", "", "please ", "kindly ", "now ", "I need you to ", "go ahead and ", "try to ", "help me "]
EN_CLAUSES = ["", "", "Give only the answer.", "Reply with the result only.", "No explanation is needed.",
              "Keep the answer short.", "Just write the result.", "Do not add anything else.",
              "Answer in a single line.", "Skip the working and state the result."]

# Short scenes around a number (numeral and parity tasks), so the sentence changes, not just the digit.
ZH_SCENES = ["一本书有{x}页", "操场上站着{x}名学生", "这座桥全长{x}米", "仓库里有{x}箱苹果",
             "今年果园收获了{x}千克梨", "小镇上住着{x}户人家", "这场比赛有{x}人报名", "图书馆新买了{x}本书",
             "一列火车上坐了{x}位乘客", "公园里种了{x}棵树", "这所学校有{x}名老师", "农场里养了{x}只羊",
             "这条河长{x}千米", "商店今天卖出了{x}瓶牛奶", "小明攒了{x}枚邮票", "山上有{x}级台阶"]
EN_SCENES = ["A book has {x} pages.", "There are {x} students in the school.", "The bridge is {x} meters long.",
             "The farm keeps {x} sheep.", "{x} people signed up for the race.", "The shop sold {x} bottles of milk today.",
             "The orchard has {x} pear trees.", "The train carried {x} passengers.", "The village has {x} houses.",
             "Tom has collected {x} stamps.", "The library bought {x} new books.", "The hill has {x} steps."]

# kind -> language -> {"inline": [...], "ref": [...], "scene": [...]} ("scene" continues a scene sentence)
PHRASINGS: dict[str, dict[str, dict[str, list[str]]]] = {
    "numeral": {
        "zh": {
            "inline": ["把{x}写成中文数字", "将数字{x}转换为中文数字", "用汉字写出{x}这个数", "{x}用中文数字怎么写？",
                       "把阿拉伯数字{x}改写成中文数字", "{x}这个数写成汉字是什么？", "写出{x}的中文写法",
                       "把{x}换成中文的数字写法"],
            "ref": ["把下面的数字写成中文数字", "将以下阿拉伯数字转换为中文数字", "用汉字写出下面这个数",
                    "把给出的数改写成中文数字", "写出下列数字的中文写法", "把这个阿拉伯数字换成汉字"],
            "scene": ["把这个数写成中文数字", "用中文数字写出这个数", "这个数用汉字怎么写？", "把其中的数字改写成中文数字",
                      "写出这个数的中文写法", "这个数的中文写法是什么？"],
        },
        "en": {
            "inline": ["write {x} in Chinese numerals", "convert the number {x} into Chinese numerals",
                       "how is {x} written in Chinese numerals?", "spell out {x} using Chinese numerals",
                       "give the Chinese numeral form of {x}", "express the number {x} with Chinese numerals"],
            "ref": ["write the number below in Chinese numerals", "convert the following number into Chinese numerals",
                    "give the Chinese numeral form of the given number", "spell out the number that follows in Chinese numerals"],
            "scene": ["write this number in Chinese numerals", "how is this number written in Chinese numerals?",
                      "give the Chinese numeral form of that number", "spell the number out in Chinese numerals"],
        },
    },
    "reverse": {
        "zh": {
            "inline": ["把“{x}”倒过来写", "将“{x}”这几个字的顺序颠倒过来", "把“{x}”从后往前重新写一遍",
                       "“{x}”倒着写是什么？", "反转字符串“{x}”", "把“{x}”逆序输出", "把短语“{x}”反过来写一遍",
                       "按相反的顺序写出“{x}”中的每个字"],
            "ref": ["把下面这句话倒过来写", "将下列文字的顺序完全颠倒", "把下面这串字从后往前写一遍", "反转下面的字符串",
                    "把以下内容按相反的顺序重写", "把下面的词语倒着写出来"],
        },
        "en": {
            "inline": ["reverse the string \"{x}\"", "write the text \"{x}\" backwards", "spell \"{x}\" backwards, letter by letter",
                       "what is \"{x}\" written backwards?", "reverse the characters in \"{x}\"",
                       "turn \"{x}\" around so that it reads backwards"],
            "ref": ["reverse the following string", "write the text below backwards",
                    "reverse the characters of the given text", "spell the following words backwards"],
        },
    },
    "sort": {
        "zh": {
            "inline": ["把{x}{d}排列", "将{x}这几个数按{D}排序", "对{x}进行{D}排序", "把数字{x}按照{d}的顺序重新排列",
                       "按{d}的顺序写出{x}", "把{x}这组数按{d}排好", "给{x}排个序，要求{d}", "{x}按{D}排列后是什么？"],
            "ref": ["把下面这些数按{d}排列", "将以下数字{D}排序", "对下列数字进行{D}排序", "把给出的一组数按{d}的顺序重新排好",
                    "下面这组数按{d}排列后是什么？", "给下面的数字排个序，要求{d}"],
        },
        "en": {
            "inline": ["sort {x} in {D} order", "arrange the numbers {x} from {d}", "put {x} in {D} order",
                       "list {x} from {d}", "rearrange {x} so they go from {d}", "what is {x} sorted in {D} order?"],
            "ref": ["sort the following numbers in {D} order", "arrange the numbers below from {d}",
                    "put the given list in {D} order", "list the numbers that follow from {d}"],
        },
    },
    "arithmetic": {
        "zh": {
            "inline": ["计算{x}的结果", "{x}等于多少？", "算一算{x}", "求出{x}的值", "{x}的结果是多少？", "给出{x}的计算结果",
                       "帮忙算一下{x}", "口算{x}", "{x}算出来是几？"],
            "ref": ["计算下面这个算式", "求下列算式的值", "算出下面式子的结果", "下面这道算式等于多少？",
                    "给出以下表达式的计算结果", "口算下面的题目"],
        },
        "en": {
            "inline": ["calculate {x}", "what is {x}?", "compute the value of {x}", "evaluate the expression {x}",
                       "find the result of {x}", "work out {x} in your head", "what does {x} equal?"],
            "ref": ["calculate the expression below", "evaluate the following arithmetic expression",
                    "compute the value of the given expression", "work out the sum that follows"],
        },
    },
    "count": {
        "zh": {
            "inline": ["“{x}”一共有多少个字？", "数一数“{x}”有几个字", "统计“{x}”的字数", "“{x}”这句话包含多少个汉字？",
                       "告诉我“{x}”由几个字组成", "算出“{x}”的汉字个数", "“{x}”里共有几个汉字？"],
            "ref": ["数一数下面这句话有多少个字", "统计下列文字的字数", "下面这段话一共有几个汉字？",
                    "算出以下句子包含的汉字数量", "告诉我下面这串文字有多少个字", "统计给出的句子共有几个字"],
        },
        "en": {
            "inline": ["how many words are in \"{x}\"?", "count the words in \"{x}\"",
                       "tell me the number of words in \"{x}\"", "give the word count of \"{x}\"",
                       "find out how many words the sentence \"{x}\" has"],
            "ref": ["count the words in the sentence below", "how many words does the following text contain?",
                    "give the number of words in the given sentence", "tell me the word count of the text that follows"],
        },
    },
    "case": {
        "zh": {
            "inline": ["把英文“{x}”全部改成{c}字母", "将英语单词“{x}”转换成{c}", "把“{x}”里的英文字母都变成{c}",
                       "用全{c}字母写出英文“{x}”", "把这串英文“{x}”改成全{c}", "把英文短语“{x}”转为{c}形式"],
            "ref": ["把下面的英文全部转换成{c}字母", "将以下英语句子改写成全{c}", "把下列英文字母统一改成{c}",
                    "把下面这串英文变成{c}", "把给出的英文短语转成{c}形式", "用{c}字母重写下面的英文"],
        },
        "en": {
            "inline": ["convert \"{x}\" to {c}", "rewrite \"{x}\" using only {c} letters", "change \"{x}\" to {c}",
                       "turn every letter of \"{x}\" into {c}", "write the phrase \"{x}\" in {c}"],
            "ref": ["convert the following text to {c}", "rewrite the text below in {c} letters",
                    "change the given phrase to {c}", "put every letter of the words that follow in {c}"],
        },
    },
    "extreme": {
        "zh": {
            "inline": ["找出{x}中{m}的数", "{x}里哪个数{m}？", "在{x}这几个数中，{m}的是哪一个？", "写出{x}中的{v}",
                       "从{x}中挑出{m}的那个数", "求{x}的{v}", "{x}这组数的{v}是多少？"],
            "ref": ["找出下面这组数中{m}的一个", "以下数字中哪个{m}？", "写出下列数字的{v}", "从给出的数里挑出{m}的数",
                    "下面这些数里{m}的是多少？", "求下面一组数的{v}"],
        },
        "en": {
            "inline": ["find the {m} number in {x}", "which is the {m} of {x}?", "what is the {v} of {x}?",
                       "pick the {m} value among {x}", "name the {m} number from {x}"],
            "ref": ["find the {m} of the numbers below", "which of the following numbers is the {m}?",
                    "give the {v} of the given list", "pick the {m} number from the list that follows"],
        },
    },
    "parity": {
        "zh": {
            "inline": ["{x}是奇数还是偶数？", "判断{x}是奇数还是偶数", "{x}这个数是单数还是双数？", "说出{x}的奇偶性",
                       "{x}属于奇数还是偶数？", "判断一下整数{x}的奇偶"],
            "ref": ["判断下面这个数是奇数还是偶数", "下列数字是奇数还是偶数？", "说出以下整数的奇偶性",
                    "给出的这个数是偶数还是奇数？", "判断下面整数的奇偶"],
            "scene": ["这个数是奇数还是偶数？", "判断这个数是奇数还是偶数", "说出这个数的奇偶性", "这个数是单数还是双数？"],
        },
        "en": {
            "inline": ["is {x} odd or even?", "tell me whether {x} is even or odd", "decide if the number {x} is odd or even",
                       "state whether {x} is an odd or an even number", "say if {x} is even or odd"],
            "ref": ["is the number below odd or even?", "decide whether the following number is even or odd",
                    "tell me if the given number is odd or even", "say whether the number that follows is even or odd"],
            "scene": ["is this number odd or even?", "tell me whether that number is even or odd",
                      "decide if the number is odd or even"],
        },
    },
}

# Data vocabularies. Chinese: two-character words (no 图片/链接/文件... the filters would drop them).
ZH_WORDS = ("春天 月亮 小河 读书 快乐 花园 星星 大海 朋友 阳光 清风 白云 山顶 雨水 老师 学校 城市 森林 故事 火车 "
            "苹果 西瓜 蝴蝶 小狗 熊猫 灯笼 风筝 书包 铅笔 窗户 草地 冬天 夏天 秋天 秘密 梦想 歌声 微笑 早晨 黄昏 "
            "湖水 田野 麦子 米饭 面条 茶杯 钢琴 医生 厨师 邮局 公园 足球 篮球 跑步 游泳 唱歌 跳舞 写字 散步 旅行 "
            "海浪 沙滩 贝壳 彩虹 雪花 雷声 灯光 道路 高山 长江 黄河 宝石 钥匙 雨伞 帽子 鞋子 口袋 饺子 月饼 糖果 "
            "蜡烛 小鸟 金鱼 桃花 竹林 石桥 村庄 灯塔 书房 厨房 冰箱 闹钟 信封 树叶 种子 果园 牧场 骏马 小船").split()
ZH_LINKS = ["", "", "", "的", "和", "在", "里的"]

# English: plain words, none of Alpaca's blacklist (file, map, draw, image, music...) and none that
# would trigger another task kind (even, odd, order, sort, count, upper...).
EN_WORDS = ("apple river garden window silver yellow quiet happy train bridge forest ocean candle pencil "
            "orange summer winter market rabbit tiger planet rocket cookie butter jacket pocket ladder mirror "
            "castle island valley meadow thunder breeze lemon cherry dragon violin basket carpet tunnel harbor "
            "lantern feather marble puzzle ribbon saddle blanket kitten puppy cloud rain stone paper chair table "
            "green purple bright gentle brave little sunny windy morning evening village farmer teacher doctor "
            "garden kettle honey pepper tomato potato garlic coffee sugar button needle thread wheel engine").split()
