"""The evaluator's LLM judge: many requests in flight, every reply cached, replies read robustly.

    judge = Judge(spec.judge, api_key=key, session_factory=sessions, concurrency=32)
    judgments = asyncio.run(judge.score(prompts))       # one Judgment per prompt, in order
    firsts = asyncio.run(judge.prefer(x_then_y))        # pairwise: both orders of the same pair
    seconds = asyncio.run(judge.prefer(y_then_x))
    outcomes = [pairwise_outcome(f.verdict, s.verdict) for f, s in zip(firsts, seconds, strict=True)]
    judge.totals.to_dict()                              # requests, cache hits, retries, tokens, cost

The judge is any OpenAI-compatible endpoint (a ``TeacherEndpoint`` in the eval spec's ``judge``
field), reached through ``belle_shared.llm_client`` at temperature 0: rate limits and server errors
are retried with backoff there (still failing after ``max_retries``: ``RetryableJobError``
``judge_unavailable``). A judge that cannot be reached or refuses the key is a ``JobError`` naming
the ``judge.…`` field before any prompt is sent (a preflight, once per Judge); a model it does not
serve fails the first request the same way (``judge_model_not_found``, ``judge.model``).

Every reply that arrives is cached in the ``judgments`` table, keyed by the sha256 of (judge base URL,
judge model, rendered prompt); the rendered prompt holds the class's judge prompt, the question, the
reference and the answer. A re-run asks the judge nothing it was asked before, a job that fails
halfway keeps what it paid for, and identical prompts in one batch are sent once. A reply with no
parsable score is cached as well (asking again at temperature 0 would cost the same and say the
same) and comes back as ``score=None, parsed=False``: never a 0. Cached replies are parsed again
when read, so a better parser improves old replies for free.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Callable, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from belle_evaluator.evalset import EvalQuestion
from belle_shared.judging import NO_REFERENCE
from belle_shared.judging import Preference as Verdict
from belle_shared.judging import parse_preference, parse_score
from belle_shared.db.models import Judgment as JudgmentRow
from belle_shared.llm_client import Reply, TeacherClient
from belle_shared.specs import TeacherEndpoint

log = logging.getLogger(__name__)

Kind = Literal["score", "pairwise"]
# Judge replies are a score or a verdict with a short reason; FastChat's judge allows 2048.
DEFAULT_MAX_TOKENS = 1024
# Keys per cache lookup: well under every driver's limit on bound parameters.
_LOOKUP_CHUNK = 500
PAIRWISE_PROMPT_FILE = "pairwise_prompt.txt"


def judgment_key(base_url: str, model: str, prompt: str) -> str:
    """The cache key: sha256 of (judge base URL, judge model, prompt), unambiguous as a JSON array."""
    payload = json.dumps([base_url.rstrip("/"), model, prompt], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Judgment:
    """A single-answer grade. ``score`` is in [0, 1], or None when the reply states none (``parsed``
    False). Tokens are what the reply cost when it was asked, cached or not."""

    prompt_sha256: str
    reply: str
    score: float | None
    parsed: bool
    cached: bool
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Preference:
    """A pairwise verdict: "A", "B", "tie", or None when the reply gives none (``parsed`` False)."""

    prompt_sha256: str
    reply: str
    verdict: Verdict | None
    parsed: bool
    cached: bool
    prompt_tokens: int
    completion_tokens: int


@dataclass
class JudgeTotals:
    """What judging cost so far, for the job's accounting. Tokens and cost count fresh replies only:
    a cache hit costs nothing."""

    prompt_price_per_million: float = 0.0
    completion_price_per_million: float = 0.0
    judged: int = 0          # prompts answered: sent, from the cache, or a duplicate in the same batch
    cache_hits: int = 0
    sent: int = 0            # distinct prompts the judge answered (one reply each)
    requests: int = 0        # HTTP requests, retries included
    retries: int = 0
    unparsable: int = 0      # replies with no score / verdict, cached ones included
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # transient error kind -> count

    @property
    def cost_usd(self) -> float:
        return (self.prompt_tokens * self.prompt_price_per_million
                + self.completion_tokens * self.completion_price_per_million) / 1_000_000

    def to_dict(self) -> dict:
        out = asdict(self)
        del out["prompt_price_per_million"], out["completion_price_per_million"]
        out["cost_usd"] = round(self.cost_usd, 6)
        return out


@dataclass(frozen=True)
class _Answer:
    key: str
    text: str
    cached: bool
    prompt_tokens: int
    completion_tokens: int


class Judge:
    def __init__(self, endpoint: TeacherEndpoint, *, api_key: str | None,
                 session_factory: Callable[[], Session], concurrency: int = 32,
                 max_tokens: int = DEFAULT_MAX_TOKENS, requests_per_minute: int | None = None,
                 backoff_base: float = 1.0, field: str = "judge"):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.endpoint = endpoint
        self.api_key = api_key
        self.session_factory = session_factory
        self.concurrency = concurrency
        self.max_tokens = max_tokens
        self.requests_per_minute = requests_per_minute
        self.backoff_base = backoff_base
        self.field = field
        self.totals = JudgeTotals(endpoint.prompt_price_per_million, endpoint.completion_price_per_million)
        self._checked = False  # preflight passed once; later batches skip it

    async def score(self, prompts: list[str]) -> list[Judgment]:
        """Grade each rendered judge prompt; results in the prompts' order."""
        answers = await self._answer(prompts, "score")
        out = []
        for a in answers:
            value = parse_score(a.text)
            out.append(Judgment(a.key, a.text, value, value is not None, a.cached, a.prompt_tokens,
                                a.completion_tokens))
        self.totals.unparsable += sum(not j.parsed for j in out)
        return out

    async def prefer(self, prompts: list[str]) -> list[Preference]:
        """Ask each rendered pairwise prompt for a verdict; results in the prompts' order."""
        answers = await self._answer(prompts, "pairwise")
        out = []
        for a in answers:
            verdict = parse_preference(a.text)
            out.append(Preference(a.key, a.text, verdict, verdict is not None, a.cached, a.prompt_tokens,
                                  a.completion_tokens))
        self.totals.unparsable += sum(not p.parsed for p in out)
        return out

    # ------------------------------------------------------------------------------- internals

    async def _answer(self, prompts: list[str], kind: Kind) -> list[_Answer]:
        keys = [judgment_key(self.endpoint.base_url, self.endpoint.model, p) for p in prompts]
        known = self._lookup(set(keys))
        todo: dict[str, str] = {}  # distinct uncached prompts, in first-seen order
        for key, prompt in zip(keys, prompts, strict=True):
            if key not in known:
                todo.setdefault(key, prompt)
        fresh = await self._ask(todo, kind) if todo else {}
        self.totals.judged += len(prompts)
        self.totals.cache_hits += sum(key in known for key in keys)
        return [known[key] if key in known else fresh[key] for key in keys]

    def _lookup(self, keys: set[str]) -> dict[str, _Answer]:
        found: dict[str, _Answer] = {}
        ordered = sorted(keys)
        with self.session_factory() as session:
            for start in range(0, len(ordered), _LOOKUP_CHUNK):
                rows = session.execute(
                    select(JudgmentRow.key, JudgmentRow.reply, JudgmentRow.prompt_tokens, JudgmentRow.completion_tokens)
                    .where(JudgmentRow.key.in_(ordered[start:start + _LOOKUP_CHUNK]))
                )
                for key, reply, prompt_tokens, completion_tokens in rows:
                    found[key] = _Answer(key, reply, True, prompt_tokens, completion_tokens)
        return found

    async def _ask(self, todo: dict[str, str], kind: Kind) -> dict[str, _Answer]:
        # A client per batch: the openai client is bound to the event loop it was first used on, and
        # callers may run each batch with its own asyncio.run.
        client = self._new_client()
        fresh: dict[str, _Answer] = {}
        slots = asyncio.Semaphore(self.concurrency)

        async def one(key: str, prompt: str) -> None:
            async with slots:
                reply = await client.complete(prompt)
            fresh[key] = self._store(key, kind, reply)

        try:
            if not self._checked:
                await self._preflight(client)
            tasks = [asyncio.create_task(one(key, prompt)) for key, prompt in todo.items()]
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                # The first error (a wrong key, retries exhausted) ends the batch; what arrived is cached.
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
        finally:
            counters = client.counters
            self.totals.requests += counters.requests
            self.totals.retries += counters.retries
            for kind_of_error, count in counters.errors.items():
                self.totals.errors[kind_of_error] = self.totals.errors.get(kind_of_error, 0) + count
            await client.aclose()
        return fresh

    async def check(self) -> None:
        """Check now that the judge answers and takes the key (a JobError if not), e.g. before hours of
        answer generation; the first batch then skips its own check."""
        client = self._new_client()
        try:
            await self._preflight(client)
        finally:
            await client.aclose()

    def _new_client(self) -> TeacherClient:
        return TeacherClient(self.endpoint, api_key=self.api_key, temperature=0.0, top_p=1.0,
                             max_tokens=self.max_tokens, requests_per_minute=self.requests_per_minute,
                             backoff_base=self.backoff_base, field=self.field)

    async def _preflight(self, client: TeacherClient) -> None:
        """Unreachable judge or refused key: a JobError now, not after a batch of failed requests."""
        models = await client.preflight()
        if models is not None and self.endpoint.model not in models:
            # Some proxies list other names than they serve; the first request says for sure.
            log.warning("the judge does not list model %r (it lists %s); trying anyway",
                        self.endpoint.model, models[:10])
        self._checked = True

    def _store(self, key: str, kind: Kind, reply: Reply) -> _Answer:
        # PostgreSQL text cannot hold NUL; no judge reply means anything by one.
        text = reply.text.replace("\x00", "")
        score = parse_score(text) if kind == "score" else None
        parsed = score is not None if kind == "score" else parse_preference(text) is not None
        row = JudgmentRow(key=key, kind=kind, judge_model=self.endpoint.model, base_url=self.endpoint.base_url,
                          reply=text, score=score, parsed=parsed, prompt_tokens=reply.prompt_tokens,
                          completion_tokens=reply.completion_tokens)
        with self.session_factory() as session:
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()  # another job cached the same prompt meanwhile; either reply will do
        self.totals.sent += 1
        self.totals.prompt_tokens += reply.prompt_tokens
        self.totals.completion_tokens += reply.completion_tokens
        return _Answer(key, text, False, reply.prompt_tokens, reply.completion_tokens)


# ---------------------------------------------------------------------------------- pairwise


def pairwise_outcome(first: Verdict | None, second: Verdict | None) -> Verdict | None:
    """The outcome of a pair judged in both orders: ``first`` with (A=x, B=y), ``second`` with
    (A=y, B=x). "A" means x wins, "B" that y wins: only when both orders agree. Any other pair of
    verdicts is a tie, so a judge that prefers a position cancels out. None if either is None."""
    if first is None or second is None:
        return None
    if first == "A" and second == "B":
        return "A"
    if first == "B" and second == "A":
        return "B"
    return "tie"


_PAIRWISE_PLACEHOLDER = re.compile(r"\{(question|std_answer|answer_a|answer_b)\}")
# Section and score labels at a line start, the pairwise ones included (回答A:, Answer B:): see
# evalset's module docstring for why a zero-width space goes in front of them.
_LABEL_LINE = re.compile(
    r"^([ \t]*)(?=(?:问题|标准回答|模型回答|回答\s*[AB]|得分|评分|分数|理由|question|reference answer|model answer"
    r"|answer\s*[AB]|score|rating|reason)[ \t]*[:：])",
    re.MULTILINE | re.IGNORECASE,
)


def load_pairwise_prompt() -> str:
    """The bundled pairwise prompt (``data/pairwise_prompt.txt``)."""
    return (resources.files("belle_evaluator") / "data" / PAIRWISE_PROMPT_FILE).read_text(encoding="utf-8")


def render_pairwise_prompt(template: str, q: EvalQuestion, answer_a: str, answer_b: str) -> str:
    """The pairwise prompt for two answers to ``q``, placeholders filled in one pass (braces in the
    texts are kept, labels at line starts are neutralised as ``render_judge_prompt`` does)."""
    def clean(text: str) -> str:
        return _LABEL_LINE.sub(lambda m: m.group(1) + "\u200b", text.strip())

    values = {
        "question": clean(q.question),
        "std_answer": clean(q.std_answer) if q.std_answer.strip() else NO_REFERENCE,
        "answer_a": clean(answer_a),
        "answer_b": clean(answer_b),
    }
    return _PAIRWISE_PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
