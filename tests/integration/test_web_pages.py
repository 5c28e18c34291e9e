"""The web pages in a real browser: Debian's chromium driven by Playwright (never a browser that
Playwright downloads), against a gateway on a real port, this run's PostgreSQL and Redis, a real
datagen worker, the tiny local model and the offline teacher as the judge. The browser fixtures are
in tests/web_browser.py; the pipelines and lineage pages are in test_web_pipelines.py.

`make test` installs chromium when /usr/bin/chromium is missing. Set BELLE_TEST_SCREENSHOTS=DIR to
keep a screenshot of each page there.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

import web_browser
from belle_shared.db.models import EvalResult, Job, Model
from belle_shared.models import register_model
from helpers import jsonl
from teacher import start_teacher
from web_browser import screenshot, sign_in, until

pytestmark = pytest.mark.integration

# The browser fixtures, under the names the tests ask for (pytest finds a fixture by its name here).
browser, page, live, http, web_team = (web_browser.browser, web_browser.page, web_browser.live, web_browser.http,
                                       web_browser.web_team)

CONTEXT = 1024  # the tiny model's context: long enough for a reply the Stop button can interrupt
JUDGE_KEY = "sk-web-judge"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, session_factory, web_team) -> str:
    from belle_trainer.tiny import init_tiny_model

    folder = init_tiny_model(tmp_path_factory.mktemp("web-models") / "tiny", arch="llama", seed=3,
                             max_position=CONTEXT)
    name = f"tiny-web-{uuid.uuid4().hex[:6]}"
    with session_factory() as session:
        register_model(session, team_id=web_team[0].id, name=name, uri=str(folder))
        session.commit()
    return name


# ------------------------------------------------------------------------------------- sign-in


def test_a_wrong_key_is_refused_and_a_right_one_signs_in_until_sign_out(page, live, web_team):
    page.goto(f"{live.url}/")                           # the root redirects to the pages
    page.wait_for_url("**/ui/")
    page.fill("#api-key", "sk-not-a-key")
    page.click("#login-button")
    error = page.locator("#login-error")
    error.wait_for(state="visible")
    assert "refused" in error.text_content() and "invalid API key" in error.text_content()
    assert page.url.endswith("/ui/")

    page.fill("#api-key", web_team[1])
    page.click("#login-button")
    page.wait_for_url("**/chat.html")
    # Not remembered: the key lives in this tab's sessionStorage only.
    assert page.evaluate("sessionStorage.getItem('belle.apiKey')") == web_team[1]
    assert page.evaluate("localStorage.getItem('belle.apiKey')") is None

    page.click("#sign-out")
    page.wait_for_url("**/index.html")
    assert page.evaluate("sessionStorage.getItem('belle.apiKey')") is None
    page.goto(f"{live.url}/ui/jobs.html")
    page.wait_for_url("**/index.html?next=jobs.html")


# ----------------------------------------------------------------------------------------- chat

# Records the reply's text length at every change, to see it grow while the stream is open.
WATCH_REPLY = """() => {
  window.replyLengths = [];
  new MutationObserver(() => {
    const replies = document.querySelectorAll('.message.assistant .text');
    const last = replies[replies.length - 1];
    if (last) window.replyLengths.push(last.textContent.length);
  }).observe(document.getElementById('conversation'), {childList: true, subtree: true, characterData: true});
}"""


def _chat_settings(page, *, max_tokens: int) -> None:
    page.fill("#temperature", "0")
    page.fill("#max-tokens", str(max_tokens))


def _send(page, text: str) -> None:
    count = page.locator(".message.assistant[data-done]").count()
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")
    until(page, f"document.querySelectorAll('.message.assistant[data-done]').length > {count}")


def test_chat_streams_tokens_and_ends_with_the_apis_greedy_reply(page, live, web_team, tiny_model, http):
    sign_in(page, live, web_team[1])
    until(page, f"[...document.querySelectorAll('#model option')].some(o => o.value === {tiny_model!r})")
    page.select_option("#model", tiny_model)
    assert "base" in page.text_content("#model-lineage")
    _chat_settings(page, max_tokens=48)
    page.evaluate(WATCH_REPLY)

    _send(page, "你好，请介绍一下你自己。")
    reply = page.locator(".message.assistant").last
    assert reply.get_attribute("data-done") == "done"
    chunks = int(reply.get_attribute("data-chunks"))
    lengths = page.evaluate("window.replyLengths")
    assert chunks >= 5, chunks                                  # one SSE event per piece of text
    assert len(set(lengths)) >= 3 and lengths == sorted(lengths), lengths   # the text grew step by step
    first = page.evaluate("document.querySelectorAll('.message.assistant .text')[0].textContent")

    messages = [{"role": "user", "content": "你好，请介绍一下你自己。"}]
    expected = http.post("/v1/chat/completions", json={"model": tiny_model, "messages": messages, "temperature": 0,
                                                       "top_p": 1, "max_tokens": 48})
    assert expected.status_code == 200, expected.text
    assert first == expected.json()["choices"][0]["message"]["content"]
    assert "tokens/s" in reply.locator(".meta").text_content()

    # A second turn carries the first one: it equals the API's reply to the whole conversation.
    _send(page, "再说一遍。")
    second = page.evaluate("document.querySelectorAll('.message.assistant .text')[1].textContent")
    messages += [{"role": "assistant", "content": first}, {"role": "user", "content": "再说一遍。"}]
    expected = http.post("/v1/chat/completions", json={"model": tiny_model, "messages": messages, "temperature": 0,
                                                       "top_p": 1, "max_tokens": 48})
    assert second == expected.json()["choices"][0]["message"]["content"]

    screenshot(page, "chat.png")


def test_chat_shows_api_errors_and_stop_ends_the_stream(page, live, web_team, tiny_model):
    sign_in(page, live, web_team[1])
    until(page, f"[...document.querySelectorAll('#model option')].some(o => o.value === {tiny_model!r})")
    page.select_option("#model", tiny_model)

    # Longer than the context: the API's 400 is shown and the message goes back to the input box.
    _chat_settings(page, max_tokens=CONTEXT * 4)
    page.fill("#prompt", "写一首很长的诗。")
    page.press("#prompt", "Enter")
    error = page.locator("#chat-error")
    error.wait_for(state="visible")
    assert "maximum context length" in error.text_content() and "max_tokens" in error.text_content()
    assert page.input_value("#prompt") == "写一首很长的诗。"
    assert page.locator(".message").count() == 0

    # A reply that runs long, stopped after its first pieces arrive.
    _chat_settings(page, max_tokens=CONTEXT - 64)
    page.press("#prompt", "Enter")
    page.wait_for_selector(".message.assistant[data-chunks]")
    page.click("#stop-button")
    page.wait_for_selector(".message.assistant[data-done]")
    reply = page.locator(".message.assistant").last
    assert reply.get_attribute("data-done") == "stopped"
    assert int(reply.get_attribute("data-chunks")) < CONTEXT - 64
    assert "stopped" in reply.locator(".meta").text_content()
    assert error.is_hidden() and page.is_enabled("#send") and page.is_disabled("#stop-button")


# ----------------------------------------------------------------------------------------- jobs

MARKUP_NAME = '<img src=x onerror="window.injected=1">&amp;<b>data</b>'


def test_jobs_page_follows_a_job_to_succeeded_without_a_reload(page, live, web_team, http, start_worker):
    sign_in(page, live, web_team[1], to="jobs.html")
    page.evaluate("window.sameDocument = true")         # gone if the page reloads
    rows = [{"instruction": f"把 {i} 写成中文", "input": "", "output": f"数字 {i}"} for i in range(20)]
    uploaded = http.post("/v1/files", files={"file": ("web.jsonl", jsonl(rows))}, data={"purpose": "import"})
    assert uploaded.status_code == 201, uploaded.text
    job = http.post("/v1/jobs", json={"type": "import", "file_id": uploaded.json()["id"], "name": MARKUP_NAME})
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]

    row = page.locator(f'#jobs tr[data-job-id="{job_id}"]')
    row.wait_for()                                        # the poll picked it up
    assert row.get_attribute("data-status") == "queued"   # no worker yet
    row.click()                                           # follow its events live
    page.wait_for_selector("#events li")
    assert page.locator("#events li").count() == 1         # "job queued", so far

    start_worker()
    page.wait_for_selector(f'#jobs tr[data-job-id="{job_id}"][data-status="succeeded"]', timeout=60_000)
    until(page, "document.getElementById('events-state').textContent === 'ended: succeeded'")
    assert page.evaluate("window.sameDocument") is True
    # The worker's events arrived on the open stream.
    messages = page.eval_on_selector_all("#events li .message", "items => items.map(li => li.textContent)")
    assert len(messages) >= 3 and messages[0] == "job queued", messages
    assert page.locator('#events li[data-kind="metrics"]').count() >= 1
    assert "succeeded" in page.text_content("#detail-status")

    # The dataset it recorded shows up with its statistics, its name as text (never as markup).
    dataset = page.locator(".dataset").filter(has=page.locator(".dataset-name", has_text="<b>data</b>"))
    dataset.wait_for()
    assert dataset.locator(".dataset-name").text_content() == MARKUP_NAME
    assert "20 rows" in dataset.text_content()
    assert dataset.locator("dt").count() >= 2
    assert page.locator("#datasets img, #datasets b").count() == 0
    assert page.evaluate("window.injected") is None
    screenshot(page, "jobs.png")


def test_models_table_shows_lineage(page, live, web_team, tiny_model, session_factory):
    with session_factory() as session:
        base = session.query(Model).filter_by(name=tiny_model).one()
        child = Model(id=uuid.uuid4(), team_id=web_team[0].id, name=f"{tiny_model}-sft", kind="fine_tuned",
                      uri=base.uri, parent_model_id=base.id, details={"architecture": "LlamaForCausalLM"})
        session.add(child)
        session.commit()
        child_name = child.name
    sign_in(page, live, web_team[1], to="jobs.html")
    row = page.locator(f'#models tr[data-model="{child_name}"]')
    row.wait_for()
    assert row.locator(".lineage").text_content() == f"{child_name} ← {tiny_model}"
    assert row.locator("td").nth(1).text_content() == "fine_tuned"


# ----------------------------------------------------------------------------------- evaluation


def _add_eval(session_factory, team_id, *, models: dict[str, str], scores: dict[str, dict[str, float]],
              judge: dict, minutes: int) -> str:
    """A finished judge-mode eval as the evaluator leaves it: the job's result and its score rows."""
    created = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=minutes)
    result = {"mode": "judge", "primary_metric": "judge", "judge": judge,
              "eval_set": {"name": "eval_set_zh.jsonl", "questions": 4},
              "models": [{"id": mid, "name": name} for name, mid in models.items()],
              "overall": {name: by_class["overall"] for name, by_class in scores.items()}}
    with session_factory() as session:
        job = Job(id=uuid.uuid4(), team_id=team_id, type="eval", status="succeeded", result=result,
                  spec={"type": "eval", "mode": "judge", "model_ids": list(models), "judge": judge},
                  created_at=created, finished_at=created + dt.timedelta(minutes=1))
        session.add(job)
        session.flush()  # the job row first: the score rows refer to it
        for name, by_class in scores.items():
            for cls, score in by_class.items():
                session.add(EvalResult(job_id=job.id, model_id=uuid.UUID(models[name]), task_class=cls, metric="judge",
                                       score=score, count=2, details={"unparsable": 0, "questions": 2}))
        session.commit()
        return str(job.id)


@pytest.fixture(scope="module")
def judge_server():
    with start_teacher(seed=0, api_key=JUDGE_KEY) as teacher:
        yield teacher


def test_evaluation_page_compares_per_class_and_scores_one_answer(page, live, web_team, http, session_factory,
                                                                   judge_server):
    team_id = web_team[0].id
    models = {}
    with session_factory() as session:
        for name in ("alpha", "beta"):
            model = Model(id=uuid.uuid4(), team_id=team_id, name=f"{name}-{uuid.uuid4().hex[:4]}", kind="base",
                          uri=f"/models/{name}", details={})
            session.add(model)
            models[model.name] = str(model.id)
        session.commit()
    alpha, beta = models
    judge = {"base_url": judge_server.base_url, "model": "belle-teacher", "api_key_secret": "JUDGE_KEY"}
    older = _add_eval(session_factory, team_id, models={alpha: models[alpha]}, judge=judge, minutes=0,
                      scores={alpha: {"math": 0.25, "code": 0.5, "overall": 0.375}})
    newer = _add_eval(session_factory, team_id, models=models, judge=judge, minutes=10,
                      scores={alpha: {"math": 0.75, "code": 1.0, "overall": 0.875},
                              beta: {"math": 0.5, "code": 0.0, "overall": 0.25}})
    assert http.put("/v1/secrets/JUDGE_KEY", json={"value": JUDGE_KEY}).status_code == 200

    sign_in(page, live, web_team[1], to="evals.html")
    # The newest eval is shown at once: a row per class, a column per model.
    page.wait_for_selector("#comparison-section:not([hidden]) #comparison tbody tr")
    assert page.eval_on_selector_all("#comparison thead .model-name", "n => n.map(x => x.textContent)") == [alpha, beta]
    math = page.locator('#comparison tr[data-class="math"] .value')
    assert [math.nth(i).text_content() for i in range(2)] == ["0.750", "0.500"]

    # Both evals side by side: the older one's column joins.
    page.check(f'#evals input.pick[value="{older}"]')
    assert page.is_checked(f'#evals input.pick[value="{newer}"]')
    page.click("#compare")
    until(page, "document.querySelectorAll('#comparison thead .model-name').length === 3")
    code = page.locator('#comparison tr[data-class="code"] .value')
    assert sorted(code.nth(i).text_content() for i in range(3)) == ["0.000", "0.500", "1.000"]
    assert page.locator('#comparison tr[data-class="overall"]').count() == 1

    # Single-question scoring: the judge comes from the latest eval, its key from the team's secret.
    until(page, "document.getElementById('judge-base-url').value !== ''")
    assert page.input_value("#judge-base-url") == judge_server.base_url
    assert page.input_value("#judge-secret") == "JUDGE_KEY"
    page.select_option("#judge-class", "open qa")
    assert "{question}" in page.text_content("#judge-template")
    page.fill("#judge-question", "中国的首都是哪座城市？")
    page.fill("#judge-reference", "北京")
    page.fill("#judge-answer", "北京")
    page.click("#judge-submit")
    page.wait_for_selector("#judge-result:not([hidden])")
    assert page.text_content("#judge-score") == "1.000"
    assert "正确" in page.text_content("#judge-reason")

    page.fill("#judge-answer", "上海")
    page.click("#judge-submit")
    until(page, "document.getElementById('judge-score').textContent === '0.000'")
    assert "不正确" in page.text_content("#judge-reason")
    screenshot(page, "evals.png")

    # A judge that cannot be reached: the API's error, in the page.
    page.fill("#judge-base-url", "http://127.0.0.1:9/v1")
    page.click("#judge-submit")
    page.wait_for_selector("#judge-error:not([hidden])")
    assert "HTTP 502" in page.text_content("#judge-error")
