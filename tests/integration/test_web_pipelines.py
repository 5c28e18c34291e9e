"""The pipelines page and the lineage page in a real browser (fixtures in tests/web_browser.py).

Lineage: the rows are written here as the workers write them (as test_lineage_api.py does), and the
page is reached the way a user reaches it, from the models table. Pipelines: import steps run by a
real datagen worker on this run's PostgreSQL and Redis; the page follows them by polling, and its
Retry and Cancel buttons act through the API.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

import web_browser
from belle_shared.db.models import EvalResult, File
from helpers import jsonl, write_recipe_rows
from web_browser import screenshot, sign_in, until

pytestmark = pytest.mark.integration

# The browser fixtures, under the names the tests ask for (pytest finds a fixture by its name here).
browser, page, live, http, web_team = (web_browser.browser, web_browser.page, web_browser.live, web_browser.http,
                                       web_browser.web_team)

ROWS = [{"instruction": f"把 {i} 写成中文数字", "output": f"第{i}个"} for i in range(6)]
STEPS = ["data", "train", "quant", "judge"]
DATASET_NAME = '<b>generated</b><img src=x onerror="window.injected=1">'  # shown as text, never as markup


def _recipe(session, team_id) -> dict:
    """The rows of a finished recipe pipeline (helpers.write_recipe_rows) with a dataset name that is
    markup, and eval scores for three classes and two metrics. Returns ids and names by role."""
    rows = write_recipe_rows(session, team_id, dataset_name=DATASET_NAME, steps=STEPS)
    for model, score in ((rows["base"], 0.0), (rows["tuned"], 0.95), (rows["quantized"], 0.9)):
        for task_class, shift in (("overall", 0.0), ("math", 0.05), ("code", -0.1)):
            for metric, factor in (("exact_match", 1.0), ("rouge_l", 0.5)):
                session.add(EvalResult(job_id=rows["eval"].id, model_id=model.id, task_class=task_class,
                                       metric=metric, score=max(0.0, score + shift) * factor, count=10))
    return {**{role: str(rows[role].id) for role in ("pipeline", "datagen", "train", "quant", "eval")},
            **{role: rows[role].name for role in ("base", "tuned", "quantized")}}


def _texts(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "nodes => nodes.map(n => n.textContent)")


# -------------------------------------------------------------------------------------- lineage


def test_lineage_page_follows_a_model_back_to_its_base_with_jobs_data_scores_and_pipeline(page, live, web_team,
                                                                                          session_factory):
    with session_factory() as session, session.begin():
        ids = _recipe(session, web_team[0].id)

    sign_in(page, live, web_team[1], to="jobs.html")
    page.locator(f'#models tr[data-model="{ids["quantized"]}"] .model-name a').click()   # the models table links here
    page.wait_for_url("**/lineage.html?model=*")
    page.wait_for_selector("#chain li.node")
    assert page.text_content("#lineage-model") == ids["quantized"]
    nodes = page.locator("#chain li.node")
    assert [nodes.nth(i).get_attribute("data-model") for i in range(nodes.count())] == [
        ids["quantized"], ids["tuned"], ids["base"]]
    assert [nodes.nth(i).get_attribute("data-kind") for i in range(3)] == ["quantized", "fine_tuned", "base"]
    quantized, tuned, base = (nodes.nth(i) for i in range(3))

    # Each link: the job that made it (type, status, its place in the pipeline) and the model it came from.
    made = quantized.locator(".made-by")
    assert made.locator("a[data-job-id]").get_attribute("data-job-id") == ids["quant"]
    assert made.locator(".job-link").text_content() == f"quantize {ids['quant'][:8]} succeeded"
    assert made.locator(".step-name").text_content() == "quant"
    assert made.locator(".pipeline-link").get_attribute("data-pipeline-id") == ids["pipeline"]
    assert quantized.locator(".made-from a").text_content() == ids["tuned"]
    assert tuned.locator(".made-by a[data-job-id]").get_attribute("data-job-id") == ids["train"]
    assert tuned.locator(".made-from a").text_content() == ids["base"]

    # The data: rows, what was dropped and why, and the job that generated it.
    assert tuned.locator(".data .dataset-name").text_content() == DATASET_NAME
    assert page.locator("#chain b, #chain img").count() == 0 and page.evaluate("window.injected") is None
    assert tuned.locator(".data .dataset-rows").text_content() == "120 rows"
    assert tuned.locator(".data .dataset-dropped").text_content() == "5 dropped (duplicate 2, too_short 3)"
    assert tuned.locator(".dataset-made-by a[data-job-id]").get_attribute("data-job-id") == ids["datagen"]
    assert "datagen" in tuned.locator(".dataset-made-by").text_content()
    assert "calibrated on" in quantized.text_content() and "trained on" in tuned.text_content()
    assert base.locator(".made-by").text_content() == "– (registered, not made by a job)"
    assert base.locator(".data").count() == 0 and "shared base model" in base.text_content()

    # Scores per model: overall and per class, for every metric of the eval.
    def score(node, cls, metric):
        return node.locator(f'.eval[data-eval-id="{ids["eval"]}"] tr[data-class="{cls}"] td[data-metric="{metric}"]') \
            .text_content()

    assert [score(n, "overall", "exact_match") for n in (quantized, tuned, base)] == ["0.900", "0.950", "0.000"]
    assert score(tuned, "math", "exact_match") == "1.000" and score(tuned, "code", "rouge_l") == "0.425"
    assert _texts(page, '#chain li.node[data-kind="fine_tuned"] .eval tbody tr th') == ["overall", "code", "math"]
    assert page.locator("#lineage-pipelines .pipeline-link").text_content() == "recipe"
    assert "succeeded" in page.text_content("#lineage-pipelines")
    screenshot(page, "lineage.png")

    # A job link opens that job on the jobs page, which says which pipeline it was a step of.
    tuned.locator(".made-by a[data-job-id]").click()
    page.wait_for_url(f"**/jobs.html?job={ids['train']}")
    until(page, f"document.getElementById('detail-id').textContent === {ids['train']!r}")
    page.wait_for_selector("#detail-status .status-succeeded")
    assert page.locator("#detail-pipeline .pipeline-link").get_attribute("data-pipeline-id") == ids["pipeline"]

    # The pipeline link opens the pipelines page on that pipeline, its steps as the jobs left them.
    page.locator("#detail-pipeline .pipeline-link").click()
    page.wait_for_url(f"**/pipelines.html?pipeline={ids['pipeline']}")
    card = page.locator(f'article.pipeline[data-pipeline-id="{ids["pipeline"]}"]')
    card.wait_for()
    assert "selected" in card.get_attribute("class")
    assert _texts(page, f'article.pipeline[data-pipeline-id="{ids["pipeline"]}"] td.step-name') == STEPS
    assert card.locator('tr[data-status="succeeded"]').count() == 4
    assert card.locator(".progress").text_content() == "4/4 steps done"

    # An unknown model: the API's 404, in the page.
    page.goto(f"{live.url}/ui/lineage.html?model=no-such-model")
    page.wait_for_selector("#lineage-error:not([hidden])")
    assert "HTTP 404" in page.text_content("#lineage-error") and page.locator("#chain li").count() == 0


# ------------------------------------------------------------------------------------ pipelines


def _upload(http, rows, name="rows.jsonl") -> dict:
    response = http.post("/v1/files", files={"file": (name, jsonl(rows))}, data={"purpose": "import"})
    assert response.status_code == 201, response.text
    return response.json()


def _submit(http, spec) -> str:
    response = http.post("/v1/pipelines", json=spec)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _card(page, pipeline_id):
    return page.locator(f'article.pipeline[data-pipeline-id="{pipeline_id}"]')


def _step_status(card, name: str) -> str:
    return card.locator(f'tr[data-step="{name}"]').get_attribute("data-status")


def test_pipelines_page_shows_steps_change_live_with_a_real_worker(page, live, web_team, http, start_worker):
    sign_in(page, live, web_team[1], to="pipelines.html")
    page.evaluate("window.sameDocument = true")          # gone if the page reloads
    file = _upload(http, ROWS)
    pipeline_id = _submit(http, {"name": "web-live", "steps": [
        {"name": "first", "spec": {"type": "import", "file_id": file["id"]}},
        {"name": "second", "spec": {"type": "import", "file_id": file["id"], "max_rows": 2}, "after": ["first"]},
    ]})

    card = _card(page, pipeline_id)
    card.wait_for()                                        # the poll picked it up; no worker yet
    assert card.get_attribute("data-status") == "running"
    assert _step_status(card, "first") == "queued" and _step_status(card, "second") == "pending"
    assert card.locator('tr[data-step="second"] .reason').text_content() == "waiting for 'first'"
    assert card.locator('tr[data-step="second"] .step-job').text_content() == "–"
    assert card.locator("button.cancel").is_visible() and card.locator("button.retry").is_hidden()

    start_worker()
    page.wait_for_selector(f'article.pipeline[data-pipeline-id="{pipeline_id}"][data-status="succeeded"]',
                           timeout=60_000)
    assert page.evaluate("window.sameDocument") is True
    assert _step_status(card, "first") == "succeeded" and _step_status(card, "second") == "succeeded"
    assert card.locator(".progress").text_content() == "2/2 steps done"
    assert card.locator('tr[data-step="second"] .reason').text_content() == ""
    second_job = http.get(f"/v1/pipelines/{pipeline_id}").json()["steps"][1]["job_id"]
    assert card.locator('tr[data-step="second"] a[data-job-id]').get_attribute("data-job-id") == second_job
    assert card.locator("button.cancel").is_hidden() and card.locator("button.retry").is_hidden()
    screenshot(page, "pipelines.png")


def test_retry_on_a_failed_pipeline_reruns_the_failed_step_from_the_page(page, live, web_team, http, start_worker,
                                                                         session_factory):
    start_worker()
    good, lost = _upload(http, ROWS), _upload(http, ROWS[:4])
    with session_factory() as session:
        stored = Path(session.get(File, uuid.UUID(lost["id"])).uri.removeprefix("file://"))
    hidden = stored.with_name(stored.name + ".away")
    stored.rename(hidden)  # the file's bytes are gone from the store: its import fails
    pipeline_id = _submit(http, {"name": "web-retry", "steps": [
        {"name": "ok", "spec": {"type": "import", "file_id": good["id"]}},
        {"name": "flaky", "spec": {"type": "import", "file_id": lost["id"]}, "after": ["ok"]},
        {"name": "last", "spec": {"type": "import", "file_id": good["id"]}, "after": ["flaky"]},
    ]})

    sign_in(page, live, web_team[1], to="pipelines.html")
    card = _card(page, pipeline_id)
    page.wait_for_selector(f'article.pipeline[data-pipeline-id="{pipeline_id}"][data-status="failed"]',
                           timeout=60_000)
    assert [_step_status(card, n) for n in ("ok", "flaky", "last")] == ["succeeded", "failed", "skipped"]
    assert card.locator(".pipeline-error").text_content().startswith("step 'flaky' failed: ")
    assert card.locator('tr[data-step="flaky"] .step-error').text_content().strip() != ""
    assert card.locator('tr[data-step="last"] .reason').text_content() == "step 'flaky' failed"
    assert card.locator("button.retry").is_visible() and card.locator("button.cancel").is_hidden()
    screenshot(page, "pipelines-failed.png")

    hidden.rename(stored)  # the storage came back
    card.locator("button.retry").click()
    page.wait_for_selector(f'article.pipeline[data-pipeline-id="{pipeline_id}"][data-status="succeeded"]',
                           timeout=60_000)
    assert [_step_status(card, n) for n in ("ok", "flaky", "last")] == ["succeeded"] * 3
    assert card.locator('tr[data-step="flaky"] .attempts').text_content() == " (run 2 times)"
    assert card.locator('tr[data-step="ok"] .attempts').count() == 0       # not repeated
    assert card.locator(".pipeline-error").is_hidden() and card.locator("button.retry").is_hidden()
    steps = {s["name"]: s for s in http.get(f"/v1/pipelines/{pipeline_id}").json()["steps"]}
    assert len(steps["flaky"]["job_ids"]) == 2 and len(steps["ok"]["job_ids"]) == 1


def test_cancel_then_retry_from_the_page(page, live, web_team, http, start_worker):
    # No worker yet: the first step stays queued, so Cancel ends the pipeline at once (a running step's
    # cancel goes through its worker: test_pipelines_api.py).
    file = _upload(http, ROWS)
    pipeline_id = _submit(http, {"name": "web-cancel", "steps": [
        {"name": "first", "spec": {"type": "import", "file_id": file["id"]}},
        {"name": "next", "spec": {"type": "import", "file_id": file["id"]}, "after": ["first"]},
    ]})
    sign_in(page, live, web_team[1], to="pipelines.html")
    card = _card(page, pipeline_id)
    card.wait_for()
    assert card.get_attribute("data-status") == "running" and card.locator("button.retry").is_hidden()
    card.locator("button.cancel").click()
    page.wait_for_selector(f'article.pipeline[data-pipeline-id="{pipeline_id}"][data-status="cancelled"]')
    assert _step_status(card, "first") == "cancelled" and _step_status(card, "next") == "skipped"
    assert card.locator('tr[data-step="next"] .reason').text_content() == "step 'first' cancelled"
    assert card.locator("button.cancel").is_hidden() and card.locator("button.retry").is_visible()
    assert http.get(f"/v1/pipelines/{pipeline_id}").json()["status"] == "cancelled"

    # A cancelled pipeline can be retried too: the cancelled step runs again, then the next one.
    start_worker()
    card.locator("button.retry").click()
    page.wait_for_selector(f'article.pipeline[data-pipeline-id="{pipeline_id}"][data-status="succeeded"]',
                           timeout=60_000)
    assert [_step_status(card, n) for n in ("first", "next")] == ["succeeded", "succeeded"]
    assert card.locator('tr[data-step="first"] .attempts').text_content() == " (run 2 times)"
