"""The eval job's static HTML report: one self-contained page (inline CSS and SVG, no scripts, no
external URLs) that can be saved, mailed or opened from the artifact store as it is.

    html = render_report(summary)   # summary: the eval job's summary dict (below)

The page shows the job (id, time, mode, eval set, judge), a score table (rows: the classes, then
overall and overall without others; columns: the models; a score of 0.725 reads 72.5, a missing one
"—"; each cell links to its class's items), a grouped bar chart of the class scores (one bar per
model, a colour per model), and every item grouped by class: the question, the reference, and each
model's answer with the judge's reply and the parsed score. Item ``i`` has the anchor ``item-i``, a
class ``c`` the anchor ``class-<slug of c>``. In pairwise mode the scores are win rates (wins +
ties/2); the page says so beside the table and shows each score's metric name.

Questions, answers, judge replies, model and class names are untrusted text: every piece of text
goes through ``html.escape`` (attributes included), so an answer that writes ``<script>`` shows it.

Summary shape::

    {"job_id", "created_at", "mode": "judge"|"pairwise"|"reference",
     "eval_set": {"name", "questions"}, "judge": {"model", "base_url"} | None,
     "models": [{"id", "name"}], "classes": [...],
     "scores": {model_id: {class | "overall" | "overall_without_others":
                           {"score": float|None, "count", "unparsable", "metric"}}},
     "items": [{"index", "class", "question", "std_answer",
                "answers": {model_id: {"answer", "judge_reply", "score", "reference_metric",
                                       "reference_score"}}}]}

Standard library only.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any, Iterable

OVERALL_ROWS = (("overall", "Overall"), ("overall_without_others", "Overall without others"))
NONE = "—"
# Distinguishable colours (Tableau 10); models beyond ten reuse them in order.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac")

# Bar chart geometry, in SVG user units.
BAR_WIDTH, GROUP_GAP, PLOT_HEIGHT = 18, 24, 200
MARGIN_LEFT, MARGIN_TOP, MARGIN_BOTTOM = 40, 12, 70

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC",sans-serif;margin:2rem auto;max-width:72rem;
padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.5rem}h2{font-size:1.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
h3{font-size:1rem;margin:.2rem 0}h4{font-size:.95rem;margin:.4rem 0 .2rem}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem}dl.meta dt{font-weight:600}
dl.meta dd{margin:0}
table.scores{border-collapse:collapse;margin:1rem 0}
table.scores th,table.scores td{border:1px solid #ddd;padding:.3rem .6rem;text-align:right;vertical-align:top}
table.scores th[scope=row]{text-align:left}table.scores tr.overall th,table.scores tr.overall td{background:#f6f6f6}
table.scores a{font-weight:600;text-decoration:none}small{color:#666;display:block;font-size:.75rem}
.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:1rem}
.swatch{display:inline-block;width:.9rem;height:.9rem;margin-right:.3rem;vertical-align:middle}
svg.chart{max-width:100%;height:auto}svg.chart text{font-size:11px;fill:#444}
article.item{border:1px solid #e3e3e3;border-radius:6px;padding:.6rem .9rem;margin:.8rem 0}
pre{white-space:pre-wrap;word-break:break-word;background:#f8f8f8;padding:.4rem .6rem;margin:.2rem 0;
font-family:inherit}
.label{color:#666;font-size:.8rem;text-transform:uppercase;letter-spacing:.03em}
.score{font-weight:600;margin-left:.5rem}.note{color:#555}
"""


def _text(value: Any) -> str:
    """Escaped text of any value ("" for None)."""
    return escape("" if value is None else str(value), quote=True)


def format_score(score: Any) -> str:
    """A 0-1 score as 0-100 with one decimal; "—" when there is none."""
    if isinstance(score, bool) or not isinstance(score, (int, float)) or score != score:  # NaN
        return NONE
    return f"{score * 100:.1f}"


def _raw_number(value: Any) -> str:
    """An item's own score or metric as given (1, 0.5, 0.532): up to three decimals."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return NONE
    return f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def class_slugs(classes: Iterable[str]) -> dict[str, str]:
    """A distinct anchor-safe slug per class name ("open qa" -> "open-qa")."""
    slugs: dict[str, str] = {}
    used: set[str] = set()
    for number, name in enumerate(classes, start=1):
        if name in slugs:
            continue
        base = re.sub(r"[^\w]+", "-", str(name).lower()).strip("-") or f"class{number}"
        slug, n = base, 2
        while slug in used:
            slug, n = f"{base}-{n}", n + 1
        slugs[name] = slug
        used.add(slug)
    return slugs


def _all_classes(summary: dict[str, Any]) -> list[str]:
    """The summary's classes in display order, then any class that only items name (none is lost)."""
    classes = list(dict.fromkeys(summary.get("classes") or []))
    for item in summary.get("items") or []:
        if item.get("class") not in classes:
            classes.append(item.get("class"))
    return classes


def _cell(summary: dict[str, Any], model_id: str, key: str) -> dict[str, Any]:
    return ((summary.get("scores") or {}).get(model_id) or {}).get(key) or {}


def _header(summary: dict[str, Any]) -> str:
    eval_set = summary.get("eval_set") or {}
    judge = summary.get("judge")
    rows = [
        ("Created", _text(summary.get("created_at"))),
        ("Mode", _text(summary.get("mode"))),
        ("Eval set", f"{_text(eval_set.get('name'))} ({_text(eval_set.get('questions'))} questions)"),
        ("Judge", f"{_text(judge.get('model'))} at {_text(judge.get('base_url'))}" if judge else "none"),
    ]
    meta = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    return f"<h1>Evaluation {_text(summary.get('job_id'))}</h1>\n<dl class=\"meta\">{meta}</dl>"


def _score_table(summary: dict[str, Any], classes: list[str], slugs: dict[str, str]) -> str:
    models = summary.get("models") or []
    head = "".join(f"<th scope=\"col\" title=\"{_text(m.get('id'))}\">{_text(m.get('name'))}</th>" for m in models)
    rows = []
    targets = [(c, _text(c), f"class-{slugs[c]}", "") for c in classes]
    # The overall rows have no items of their own: they link to the start of the item list.
    targets += [(key, label, "items", " class=\"overall\"") for key, label in OVERALL_ROWS]
    for key, label, anchor, row_class in targets:
        cells = []
        for model in models:
            cell = _cell(summary, model.get("id"), key)
            detail = f"n={_text(cell.get('count', 0))} · {_text(cell.get('unparsable', 0))} unparsable"
            if cell.get("metric"):
                detail += f" · {_text(cell.get('metric'))}"
            cells.append(f"<td><a href=\"#{_text(anchor)}\">{format_score(cell.get('score'))}</a>"
                         f"<small>{detail}</small></td>")
        rows.append(f"<tr{row_class}><th scope=\"row\">{label}</th>{''.join(cells)}</tr>")
    note = ""
    if summary.get("mode") == "pairwise":
        note = "<p class=\"note\">Pairwise mode: a score is the model's win rate (wins + ties/2) against the other.</p>"
    return (f"<h2 id=\"scores\">Scores</h2>{note}\n<table class=\"scores\"><thead><tr><th scope=\"col\">Class</th>"
            f"{head}</tr></thead>\n<tbody>{''.join(rows)}</tbody></table>")


def _bar_chart(summary: dict[str, Any], classes: list[str]) -> str:
    """Grouped bars: a group per class, a bar per model, heights 0-100."""
    models = summary.get("models") or []
    group = max(1, len(models)) * BAR_WIDTH + GROUP_GAP
    width = MARGIN_LEFT + max(1, len(classes)) * group
    height = MARGIN_TOP + PLOT_HEIGHT + MARGIN_BOTTOM
    base = MARGIN_TOP + PLOT_HEIGHT
    parts = [f"<svg class=\"chart\" width=\"{width}\" height=\"{height}\" "
             f"viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"Scores per class\">"]
    for tick in (0, 25, 50, 75, 100):
        y = base - tick * PLOT_HEIGHT / 100
        parts.append(f"<line x1=\"{MARGIN_LEFT}\" y1=\"{y:g}\" x2=\"{width}\" y2=\"{y:g}\" stroke=\"#e5e5e5\"/>"
                     f"<text x=\"{MARGIN_LEFT - 6}\" y=\"{y + 4:g}\" text-anchor=\"end\">{tick}</text>")
    for g, name in enumerate(classes):
        left = MARGIN_LEFT + g * group + GROUP_GAP / 2
        for m, model in enumerate(models):
            score = _cell(summary, model.get("id"), name).get("score")
            shown = format_score(score)
            value = 0.0 if shown == NONE else max(0.0, min(100.0, float(shown)))
            bar_height = value * PLOT_HEIGHT / 100
            parts.append(
                f"<rect class=\"bar\" data-class=\"{_text(name)}\" data-model=\"{_text(model.get('id'))}\" "
                f"x=\"{left + m * BAR_WIDTH:g}\" y=\"{base - bar_height:g}\" width=\"{BAR_WIDTH - 2}\" "
                f"height=\"{bar_height:g}\" fill=\"{PALETTE[m % len(PALETTE)]}\">"
                f"<title>{_text(model.get('name'))} · {_text(name)}: {shown}</title></rect>")
        centre = left + len(models) * BAR_WIDTH / 2
        parts.append(f"<text x=\"{centre:g}\" y=\"{base + 14}\" text-anchor=\"end\" "
                     f"transform=\"rotate(-35 {centre:g} {base + 14})\">{_text(name)}</text>")
    parts.append("</svg>")
    legend = "".join(f"<li><span class=\"swatch\" style=\"background:{PALETTE[m % len(PALETTE)]}\"></span>"
                     f"{_text(model.get('name'))}</li>" for m, model in enumerate(models))
    return f"<h2 id=\"chart\">Scores per class</h2>\n<ul class=\"legend\">{legend}</ul>\n{''.join(parts)}"


def _answer_block(model: dict[str, Any], answer: dict[str, Any]) -> str:
    score = answer.get("score")
    if score is None and answer.get("judge_reply"):
        score_text = "unparsable"
    else:
        score_text = _raw_number(score)
    parts = [f"<h4>{_text(model.get('name'))}<span class=\"score\">score: {_text(score_text)}</span></h4>",
             f"<pre class=\"answer\">{_text(answer.get('answer'))}</pre>"]
    if answer.get("reference_metric"):
        parts.append(f"<p class=\"metric\">{_text(answer.get('reference_metric'))}: "
                     f"{_text(_raw_number(answer.get('reference_score')))}</p>")
    if answer.get("judge_reply") is not None:
        parts.append(f"<details><summary>Judge reply</summary><pre class=\"judge\">"
                     f"{_text(answer.get('judge_reply'))}</pre></details>")
    return "<div class=\"model-answer\">" + "".join(parts) + "</div>"


def _items(summary: dict[str, Any], classes: list[str], slugs: dict[str, str]) -> str:
    models = summary.get("models") or []
    by_class: dict[str, list[dict[str, Any]]] = {c: [] for c in classes}
    for item in summary.get("items") or []:
        by_class[item.get("class")].append(item)
    sections = []
    for name in classes:
        items = by_class[name]
        articles = []
        for item in items:
            answers = item.get("answers") or {}
            blocks = "".join(_answer_block(m, answers[m.get("id")]) for m in models if m.get("id") in answers)
            reference = item.get("std_answer")
            articles.append(
                f"<article class=\"item\" id=\"item-{_text(item.get('index'))}\">"
                f"<h3><a href=\"#item-{_text(item.get('index'))}\">#{_text(item.get('index'))}</a></h3>"
                f"<div class=\"label\">Question</div><pre class=\"question\">{_text(item.get('question'))}</pre>"
                f"<div class=\"label\">Reference</div><pre class=\"reference\">"
                f"{_text(reference) if reference else NONE}</pre>{blocks}</article>")
        sections.append(f"<section id=\"class-{_text(slugs[name])}\"><h2>{_text(name)} "
                        f"<small>{len(items)} item{'' if len(items) == 1 else 's'}</small></h2>{''.join(articles)}</section>")
    return "<div id=\"items\">" + "\n".join(sections) + "</div>"


def render_report(summary: dict[str, Any]) -> str:
    """The whole report page for an eval job's summary."""
    classes = _all_classes(summary)
    slugs = class_slugs(classes)
    body = "\n".join([_header(summary), _score_table(summary, classes, slugs), _bar_chart(summary, classes),
                      _items(summary, classes, slugs)])
    return ("<!DOCTYPE html>\n<html lang=\"zh\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>BELLE evaluation {_text(summary.get('job_id'))}</title>\n<style>{CSS}</style>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n")
