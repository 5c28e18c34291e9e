"""The eval report page: escaping, score formatting, links and anchors, one bar per (class, model)."""

from __future__ import annotations

from html.parser import HTMLParser

from belle_evaluator.report import class_slugs, format_score, render_report

ATTACK = "<script>alert('x')</script>"
NONE_DASH = "—"


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data):
        self.text.append(data)


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return parser


def _summary() -> dict:
    def cell(score, count, unparsable=0, metric="judge"):
        return {"score": score, "count": count, "unparsable": unparsable, "metric": metric}

    return {
        "job_id": "job-<1>",
        "created_at": "2026-11-21T10:00:00+00:00",
        "mode": "judge",
        "eval_set": {"name": "bundled zh", "questions": 3},
        "judge": {"model": "belle-teacher", "base_url": "http://127.0.0.1:8100/v1"},
        "models": [{"id": "m1", "name": "tiny <base>"}, {"id": "m2", "name": "tiny-lora"}],
        "classes": ["open qa", "math"],
        "scores": {
            "m1": {"open qa": cell(0.725, 2), "math": cell(None, 1, unparsable=1),
                   "overall": cell(2 / 3, 3, 1), "overall_without_others": cell(0.5, 3, 1)},
            "m2": {"open qa": cell(1.0, 2), "math": cell(0.0, 1),
                   "overall": cell(0.6667, 3), "overall_without_others": cell(0.6667, 3)},
        },
        "items": [
            {"index": 0, "class": "open qa", "question": "什么是 <b>HTML</b>?", "std_answer": "一种标记语言",
             "answers": {"m1": {"answer": ATTACK, "judge_reply": "得分: 1", "score": 1.0,
                                "reference_metric": None, "reference_score": None},
                         "m2": {"answer": "标记语言", "judge_reply": "得分: 1", "score": 1.0,
                                "reference_metric": None, "reference_score": None}}},
            {"index": 1, "class": "open qa", "question": "q1", "std_answer": None,
             "answers": {"m1": {"answer": "a", "judge_reply": "得分: 0", "score": 0.0,
                                "reference_metric": "rouge_l", "reference_score": 0.53219},
                         "m2": {"answer": "b", "judge_reply": "得分: 1", "score": 1.0,
                                "reference_metric": None, "reference_score": None}}},
            {"index": 2, "class": "math", "question": "1+1=?", "std_answer": "2",
             "answers": {"m1": {"answer": "3", "judge_reply": "I cannot decide", "score": None,
                                "reference_metric": None, "reference_score": None},
                         "m2": {"answer": "2", "judge_reply": "得分: 1", "score": 1.0,
                                "reference_metric": None, "reference_score": None}}},
        ],
    }


def test_untrusted_text_is_escaped_and_the_page_is_self_contained():
    html = render_report(_summary())
    page = _parse(html)
    tags = [tag for tag, _ in page.tags]
    # The answer's <script> and the question's <b> are text, not elements.
    assert "script" not in tags and "b" not in tags
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert ATTACK in "".join(page.text)
    assert "<title>BELLE evaluation job-&lt;1&gt;</title>" in html
    # Nothing is fetched: no external stylesheet, image or script source; the one URL is the judge's, as text.
    assert not any(tag in ("link", "img", "iframe", "object") for tag in tags)
    assert not any("src" in attrs for _, attrs in page.tags)
    assert html.count("http") == 1 and "127.0.0.1:8100" in "".join(page.text)


def test_scores_read_0_to_100_with_one_decimal():
    assert format_score(0.725) == "72.5"
    assert format_score(2 / 3) == "66.7"
    assert format_score(1) == "100.0"
    assert format_score(None) == NONE_DASH
    html = render_report(_summary())
    text = "".join(_parse(html).text)
    # m1: open qa 72.5, math none, overall 66.7; m2: 100.0, 0.0, 66.7 (0.6667 rounds up).
    for shown in ("72.5", "100.0", "0.0", "66.7", "50.0"):
        assert shown in text
    assert '<a href="#class-math">—</a>' in html  # m1's math score is None
    assert "n=1 · 1 unparsable · judge" in text
    # Item scores: m1's unparsed reply says so; the reference metric is shown to three decimals.
    assert "score: unparsable" in text and "rouge_l: 0.532" in text



def test_every_score_cell_links_to_its_class_and_every_item_has_an_anchor():
    page = _parse(render_report(_summary()))
    ids = {attrs["id"] for _, attrs in page.tags if "id" in attrs}
    assert {"class-open-qa", "class-math", "item-0", "item-1", "item-2"} <= ids
    hrefs = [attrs["href"] for tag, attrs in page.tags if tag == "a" and "href" in attrs]
    assert all(href.startswith("#") and href[1:] in ids for href in hrefs)  # no dangling link
    cell_links = [href for href in hrefs if href.startswith("#class-")]
    # 2 classes x 2 models.
    assert sorted(cell_links) == ["#class-math", "#class-math", "#class-open-qa", "#class-open-qa"]


def test_one_bar_per_class_and_model_with_its_height():
    page = _parse(render_report(_summary()))
    bars = [attrs for tag, attrs in page.tags if tag == "rect" and attrs.get("class") == "bar"]
    assert sorted((b["data-class"], b["data-model"]) for b in bars) == [
        ("math", "m1"), ("math", "m2"), ("open qa", "m1"), ("open qa", "m2")]
    heights = {(b["data-class"], b["data-model"]): float(b["height"]) for b in bars}
    # The plot is 200 units high: 72.5 -> 145, 100 -> 200, a missing score and 0 -> no height.
    assert heights == {("open qa", "m1"): 145.0, ("open qa", "m2"): 200.0, ("math", "m1"): 0.0,
                       ("math", "m2"): 0.0}
    # Each model keeps its colour in every group, and the two differ.
    fills = {(b["data-model"], b["fill"]) for b in bars}
    assert len(fills) == 2 and len({f for _, f in fills}) == 2


def test_pairwise_mode_says_the_scores_are_win_rates():
    summary = _summary()
    summary["mode"] = "pairwise"
    text = "".join(_parse(render_report(summary)).text)
    assert "win rate (wins + ties/2)" in text


def test_items_of_a_class_missing_from_the_list_are_still_shown():
    summary = _summary()
    summary["classes"] = ["open qa"]
    page = _parse(render_report(summary))
    ids = {attrs["id"] for _, attrs in page.tags if "id" in attrs}
    assert {"class-math", "item-2"} <= ids


def test_class_slugs_are_distinct():
    assert class_slugs(["open qa", "open-qa", "Open QA", "数学", "?"]) == {
        "open qa": "open-qa", "open-qa": "open-qa-2", "Open QA": "open-qa-3", "数学": "数学", "?": "class5"}
