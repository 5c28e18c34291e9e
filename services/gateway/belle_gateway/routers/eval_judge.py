"""Scoring one answer now: BELLE's single-question scoring page, backed by the server's judge.

`POST /v1/evals/judge` renders the class's judge prompt (the evaluator's prompts, from
``belle_shared.judging``) for a question, an optional reference and an answer, asks the judge
synchronously at temperature 0 and returns the parsed score with the judge's explanation.
`GET /v1/evals/judge/prompts` lists the classes and their templates.

The judge is named as in an eval spec's ``judge`` field; its key is resolved as a worker resolves
it (`belle_shared.secrets`): the team's own secret named by ``judge.api_key_secret``
(`PUT /v1/secrets/{name}`), else an environment variable of that name only if the operator lists it
in ``BELLE_SHARED_SECRET_NAMES`` (a team picks the judge's URL, so no other variable is ever read).

A request waits for the judge, so it retries less than a job would (at most ``MAX_RETRIES``, each
reply within ``MAX_TIMEOUT`` seconds). A judge that cannot be reached is a 502; one that refuses the
key or does not serve the model is a 400 naming the field to change. Nothing is cached or stored.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from belle_gateway.deps import SettingsDep, TeamDep
from belle_gateway.errors import APIError
from belle_gateway.openapi import error_responses
from belle_gateway.schemas import JudgeEndpointPublic, JudgePromptPublic, JudgePromptsPublic, JudgeRequest, JudgmentPublic
from belle_shared.errors import JobError, RetryableJobError
from belle_shared.eval_sets import EvalRow
from belle_shared.judging import load_judge_prompts, parse_score, render_judge_prompt, reply_reason
from belle_shared.llm_client import TeacherClient
from belle_shared.secrets import resolve_secret
from belle_shared.specs import EVAL_CLASSES, canonical_eval_class

router = APIRouter(prefix="/v1/evals/judge", tags=["evals"])

MAX_RETRIES = 2
MAX_TIMEOUT = 60.0
# A score line and a short reason; the evaluator's judge allows more for pairwise reasoning.
MAX_JUDGE_TOKENS = 512


@router.get("/prompts", response_model=JudgePromptsPublic, response_model_by_alias=True)
def prompts(team: TeamDep):
    """The task classes and the judge prompt used for each."""
    return JudgePromptsPublic(data=[JudgePromptPublic(cls=c, template=t) for c, t in load_judge_prompts().items()])


@router.post("", response_model=JudgmentPublic, response_model_by_alias=True, responses=error_responses(502))
async def judge(body: JudgeRequest, request: Request, settings: SettingsDep, team: TeamDep):
    """Score one answer with the class's judge prompt: the judge's score (0 to 1) and its explanation."""
    cls = canonical_eval_class(body.cls)
    if cls is None:
        raise APIError(400, f"class: unknown class {body.cls!r} (known: {', '.join(EVAL_CLASSES)})", param="class",
                       code="unknown_class")
    for name in ("question", "answer"):
        if not getattr(body, name).strip():
            raise APIError(400, f"{name}: must not be blank", param=name, code="blank")
    if not body.judge.base_url.startswith(("http://", "https://")):
        raise APIError(400, f"judge.base_url: {body.judge.base_url!r} is not an http(s) URL", param="judge.base_url",
                       code="invalid_url")
    try:
        api_key = await run_in_threadpool(resolve_secret, body.judge.api_key_secret, param="judge.api_key_secret",
                                          settings=settings, session_factory=request.app.state.session_factory,
                                          team_id=team.id)
    except JobError as exc:
        raise APIError(400, f"{exc.param}: {exc.message}", param=exc.param, code=exc.code) from None
    row = EvalRow(line=0, question=body.question, cls=cls, std_answer=body.reference or "")
    prompt = render_judge_prompt(load_judge_prompts()[cls], row, body.answer)
    endpoint = body.judge.model_copy(update={"max_retries": min(body.judge.max_retries, MAX_RETRIES),
                                             "timeout": min(body.judge.timeout, MAX_TIMEOUT)})
    client = TeacherClient(endpoint, api_key=api_key, temperature=0.0, top_p=1.0, max_tokens=MAX_JUDGE_TOKENS,
                           backoff_base=0.5, field="judge")
    try:
        reply = await client.complete(prompt)
    except RetryableJobError as exc:
        raise APIError(502, exc.message, param=exc.param, code="judge_unavailable") from None
    except JobError as exc:
        # Never a 401/403 of our own: the page would take it for its own key being refused.
        raise APIError(400, exc.message, param=exc.param, code=exc.code) from None
    finally:
        await client.aclose()
    score = parse_score(reply.text)
    return JudgmentPublic(
        cls=cls, score=score, parsed=score is not None, reason=reply_reason(reply.text), reply=reply.text,
        prompt=prompt, judge=JudgeEndpointPublic(base_url=endpoint.base_url, model=endpoint.model),
        prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
    )
