"""Candidate answers from an OpenAI-compatible endpoint (a model served elsewhere: vLLM, an API).

    answers = await endpoint_answers(endpoint, api_key, questions, generation, concurrency=32)

Each question is sent on its own, as one user message to the chat API (or as the prompt of the
completions API when the endpoint says ``api="completion"``), with the job's temperature, top_p and
max_tokens; at most ``concurrency`` requests are in flight. The answers come back in the questions'
order as ``Answer`` records (``id`` is the question's index), the same records local generation
writes, with the endpoint's token counts (0 where it reports no usage).

Requests go through ``belle_shared.llm_client.TeacherClient``: rate limits, server errors, timeouts
and dropped connections are retried (``endpoint.max_retries`` times, exponential backoff); what no
retry fixes (a wrong key, an unknown model) is a ``JobError`` naming the spec field ``field``
(``candidate.model``, ...). The first error that outlives the retries fails the whole call and the
questions still waiting are not sent: an eval with a missing answer would score the model on a
different question set. The API key goes to the client only, never into a log or an error.
"""

from __future__ import annotations

import asyncio
from typing import Callable, Sequence

from belle_evaluator.answer_config import Answer
from belle_shared.llm_client import TeacherClient
from belle_shared.specs import GenerationOptions, TeacherEndpoint


async def endpoint_answers(endpoint: TeacherEndpoint, api_key: str | None, questions: Sequence[str],
                           generation: GenerationOptions, concurrency: int, *, field: str = "candidate",
                           param_prefix: str | None = None, backoff_base: float = 1.0,
                           on_answer: Callable[[int], None] | None = None) -> list[Answer]:
    """Every question's answer from `endpoint`, in order; JobError (RetryableJobError for an endpoint
    that kept failing) if one cannot be had. `on_answer(answers so far)` is called as each one comes."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    semaphore = asyncio.Semaphore(concurrency)
    answered = 0
    client = TeacherClient(endpoint, api_key=api_key, temperature=generation.temperature, top_p=generation.top_p,
                           max_tokens=generation.max_new_tokens, backoff_base=backoff_base, field=field,
                           param_prefix=param_prefix)

    async def one(index: int, question: str) -> Answer:
        nonlocal answered
        async with semaphore:
            reply = await client.complete(question)
        answered += 1
        if on_answer is not None:
            on_answer(answered)
        return Answer(id=index, answer=reply.text.strip(), prompt_tokens=reply.prompt_tokens,
                      completion_tokens=reply.completion_tokens)

    tasks = [asyncio.ensure_future(one(i, q)) for i, q in enumerate(questions)]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        # After a failure, the rest are cancelled (a no-op for those already done).
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()
