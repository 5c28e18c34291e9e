"""The generation loop: teacher requests in flight, replies parsed, filtered and de-duplicated.

Each request shows the teacher a few sampled seed tasks (and, once there are some, tasks generated
earlier in the job) as numbered 指令/输入/输出 blocks and asks it to continue the list; in dialogue
mode it asks for a multi-turn conversation about a topic instead. ``Generator`` holds the state
between requests (de-duplication index, counters, rows not yet committed) and does the synchronous
work on each reply; ``generate`` keeps up to ``concurrency`` requests in flight, paced by the
client's rate limit and bounded by the token/cost ``Budget``, and commits kept rows to the
``GenerationLog`` every few seconds. The job around it (inputs, resume, the dataset record) is in
``generate``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from belle_datagen.blocks import (
    Task,
    parse_dialogue_reply,
    parse_self_instruct_reply,
    render_dialogue_prompt,
    render_self_instruct_prompt,
)
from belle_datagen.checkpoint import GenerationLog
from belle_datagen.dedup import NearDuplicateIndex
from belle_datagen.filters import dialogue_drop_reason, drop_reason
from belle_datagen.inputs import GenerationInputs
from belle_shared.errors import RetryableJobError
from belle_shared.llm_client import Reply, TeacherClient
from belle_shared.specs import DatagenSpec
from belle_shared.worker import JobContext

log = logging.getLogger(__name__)

FLUSH_EVERY_SECONDS = 2.0
FLUSH_EVERY_ROWS = 2000
PROGRESS_EVERY_SECONDS = 3.0
RECENT_GENERATED = 2000  # generated tasks kept in memory as candidate examples
EXAMPLES_PER_REASON = 3
_TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[A-Za-z]+|\d+|[^\sA-Za-z\d]")


def estimate_tokens(text: str) -> int:
    """A deliberately generous token count (one per CJK character, word, number or symbol) for budgets."""
    return len(_TOKEN.findall(text))


@dataclass
class Progress:
    """Counters that survive a restart (they are saved with every checkpoint)."""

    accepted: int = 0
    replies: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    requests: int = 0
    retries: int = 0
    transient_errors: dict[str, int] = field(default_factory=dict)
    dropped: Counter[str] = field(default_factory=Counter)
    drop_examples: dict[str, list[str]] = field(default_factory=dict)
    attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted, "replies": self.replies, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "cost_usd": self.cost_usd, "requests": self.requests,
            "retries": self.retries, "transient_errors": dict(self.transient_errors), "dropped": dict(self.dropped),
            "drop_examples": self.drop_examples, "attempts": self.attempts,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        return cls(
            accepted=data["accepted"], replies=data["replies"], prompt_tokens=data["prompt_tokens"],
            completion_tokens=data["completion_tokens"], cost_usd=data["cost_usd"], requests=data["requests"],
            retries=data["retries"], transient_errors=dict(data["transient_errors"]),
            dropped=Counter(data["dropped"]), drop_examples=dict(data["drop_examples"]),
            attempts=data.get("attempts", 0),
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def drop(self, reason: str, text: str, count: int = 1) -> None:
        self.dropped[reason] += count
        examples = self.drop_examples.setdefault(reason, [])
        if text and len(examples) < EXAMPLES_PER_REASON:
            examples.append(text[:200])


class Generator:
    """The state of one generation job between requests; async only around the teacher calls."""

    def __init__(self, spec: DatagenSpec, inputs: GenerationInputs, *, rng: random.Random):
        self.spec = spec
        self.inputs = inputs
        self.rng = rng
        self.progress = Progress()
        self.index = NearDuplicateIndex(threshold=spec.similarity_threshold)
        for seed in inputs.seeds:
            self.index.add(seed.instruction)
        self.recent: deque[Task] = deque(maxlen=RECENT_GENERATED)
        self.pending: list[dict[str, Any]] = []  # kept rows not yet committed
        self.stop_reason: str | None = None

    # ----------------------------------------------------------------------------- resume

    def restore(self, state: dict[str, Any], rows) -> None:
        self.progress = Progress.from_dict(state["counters"])
        accepted = 0
        for row in rows:
            self.index.add(dedup_key(row))
            if "instruction" in row:
                self.recent.append(Task(row["instruction"], row["input"], row["output"]))
            accepted += 1
        # The committed chunks are the truth: counters saved with them always match, but be explicit.
        self.progress.accepted = accepted

    # --------------------------------------------------------------------------- prompts

    def next_prompt(self) -> tuple[str, int]:
        """A prompt and the index of the first block the teacher should write (0 in dialogue mode)."""
        spec = self.spec
        if spec.mode == "dialogue":
            topic = self.rng.choice(self.inputs.topics)
            return render_dialogue_prompt(self.inputs.template, topic=topic, turns=spec.turns), 0
        generated = min(spec.num_generated_examples, len(self.recent))
        examples = [Task(s.instruction, s.input, s.output)
                    for s in self.rng.sample(self.inputs.seeds, spec.num_prompt_instructions - generated)]
        examples += self.rng.sample(list(self.recent), generated) if generated else []
        self.rng.shuffle(examples)
        prompt = render_self_instruct_prompt(self.inputs.template, examples, num_tasks=spec.tasks_per_request,
                                             language=spec.language)
        return prompt, len(examples) + 1

    # --------------------------------------------------------------------------- replies

    def absorb(self, reply: Reply, first_index: int, prices: tuple[float, float]) -> int:
        """Parse, filter and de-duplicate one reply; returns how many rows it added."""
        p = self.progress
        p.replies += 1
        p.prompt_tokens += reply.prompt_tokens
        p.completion_tokens += reply.completion_tokens
        p.cost_usd += (reply.prompt_tokens * prices[0] + reply.completion_tokens * prices[1]) / 1e6
        if self.spec.mode == "dialogue":
            return self._absorb_dialogue(reply)
        parsed = parse_self_instruct_reply(reply.text, first_index=first_index, language=self.spec.language,
                                           truncated=reply.truncated, completion=self.spec.teacher.api == "completion")
        for reason, count in parsed.dropped.items():
            p.drop(reason, "", count)
        added = 0
        for task in parsed.tasks:
            if self.target_reached:
                break
            reason = drop_reason(task, language=self.spec.language)
            if reason is None and self.index.add_if_novel(task.instruction) is None:
                reason = "near_duplicate"
            if reason is not None:
                p.drop(reason, task.instruction)
                continue
            self.recent.append(task)
            self._keep({"instruction": task.instruction, "input": task.input, "output": task.output})
            added += 1
        return added

    def _absorb_dialogue(self, reply: Reply) -> int:
        turns, reason = parse_dialogue_reply(reply.text, truncated=reply.truncated)
        if turns is not None:
            reason = dialogue_drop_reason(turns, language=self.spec.language)
        row = {"conversations": turns} if turns is not None else None
        if reason is None and self.index.add_if_novel(dedup_key(row)) is None:
            reason = "near_duplicate"
        if reason is not None:
            self.progress.drop(reason, reply.text if turns is None else turns[0]["value"])
            return 0
        if self.target_reached:
            return 0
        self._keep(row)
        return 1

    def _keep(self, row: dict[str, Any]) -> None:
        self.pending.append(row)
        self.progress.accepted += 1

    @property
    def target_reached(self) -> bool:
        return self.progress.accepted >= self.spec.target_count

    # ---------------------------------------------------------------------------- budget

    def expected_yield(self) -> float:
        """Rows a request is expected to add, from the job's own history (optimistic at first)."""
        p = self.progress
        if p.replies >= 3:
            return max(p.accepted / p.replies, 0.05)
        if self.spec.mode == "dialogue":
            return 1.0
        return max(1.0, (self.spec.tasks_per_request - self.spec.num_prompt_instructions) / 2)


@dataclass
class Budget:
    """Reservations for requests in flight, so no request starts that could overrun the budget."""

    spec: DatagenSpec
    reserved_tokens: int = 0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        t = self.spec.teacher
        return (prompt_tokens * t.prompt_price_per_million + completion_tokens * t.completion_price_per_million) / 1e6

    def admits(self, progress: Progress, prompt_tokens: int) -> str | None:
        """None if a request of this size may start, else the exhausted budget's name."""
        worst = prompt_tokens + self.spec.max_tokens
        limit = self.spec.max_total_tokens
        if limit is not None and progress.total_tokens + self.reserved_tokens + worst > limit:
            return "token_budget"
        if self.spec.max_cost_usd is not None:
            reserved_cost = self.cost(self.reserved_tokens, 0) + self.cost(prompt_tokens, self.spec.max_tokens)
            if progress.cost_usd + reserved_cost > self.spec.max_cost_usd:
                return "cost_budget"
        return None


async def generate(gen: Generator, client: TeacherClient, journal: GenerationLog, ctx: JobContext) -> None:
    """Keep up to ``concurrency`` requests in flight until the target or a budget is reached."""
    spec = gen.spec
    budget = Budget(spec)
    prices = (spec.teacher.prompt_price_per_million, spec.teacher.completion_price_per_million)
    inflight: dict[asyncio.Task, tuple[int, int]] = {}  # task -> (first block index, reserved tokens)
    last_flush = last_progress = time.monotonic()
    started, accepted_at_start = time.monotonic(), gen.progress.accepted

    async def request(prompt: str) -> Reply:
        return await client.complete(prompt)

    try:
        while True:
            ctx.check_cancelled()
            while gen.stop_reason is None and len(inflight) < spec.concurrency:
                needed = spec.target_count - gen.progress.accepted
                if needed <= 0:
                    gen.stop_reason = "target_count"
                    break
                # Enough in flight to reach the target if they yield as usual: wait for them.
                if len(inflight) * gen.expected_yield() >= needed:
                    break
                prompt, first_index = gen.next_prompt()
                prompt_tokens = estimate_tokens(prompt)
                exhausted = budget.admits(gen.progress, prompt_tokens)
                if exhausted:
                    if not inflight:
                        gen.stop_reason = exhausted
                    break
                reserved = prompt_tokens + spec.max_tokens
                budget.reserved_tokens += reserved
                inflight[asyncio.ensure_future(request(prompt))] = (first_index, reserved)
            if not inflight:
                break
            done, _ = await asyncio.wait(inflight, timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                first_index, reserved = inflight.pop(task)
                budget.reserved_tokens -= reserved
                gen.absorb(task.result(), first_index, prices)  # a fatal teacher error propagates here
            if gen.target_reached and gen.stop_reason is None:
                gen.stop_reason = "target_count"
            if gen.stop_reason == "target_count":
                break  # requests still in flight are no longer needed
            now = time.monotonic()
            report_due = now - last_progress >= PROGRESS_EVERY_SECONDS
            # A progress report commits first, so the rows it reports would survive a crash.
            if report_due or (gen.pending and (len(gen.pending) >= FLUSH_EVERY_ROWS
                                               or now - last_flush >= FLUSH_EVERY_SECONDS)):
                _commit(gen, client, journal)
                last_flush = now
            if report_due:
                last_progress = now
                _report(gen, ctx, inflight=len(inflight), rate=(gen.progress.accepted - accepted_at_start)
                        / max(now - started, 1e-9))
    except RetryableJobError:
        # The teacher is down for now: keep what was generated; the retry resumes from here.
        _commit(gen, client, journal)
        raise
    finally:
        for task in inflight:
            task.cancel()
        if inflight:
            await asyncio.gather(*inflight, return_exceptions=True)
        _sync_client_counters(gen, client)
    _commit(gen, client, journal)


def _sync_client_counters(gen: Generator, client: TeacherClient) -> None:
    """Fold the client's counters (this attempt only) into the saved ones, once."""
    c = client.counters
    p = gen.progress
    p.requests += c.requests
    p.retries += c.retries
    for kind, count in c.errors.items():
        p.transient_errors[kind] = p.transient_errors.get(kind, 0) + count
    c.requests, c.retries, c.errors = 0, 0, {}


def _commit(gen: Generator, client: TeacherClient, journal: GenerationLog) -> None:
    _sync_client_counters(gen, client)
    rows, gen.pending = gen.pending, []
    journal.commit(rows, gen.progress.to_dict())


def _report(gen: Generator, ctx: JobContext, *, inflight: int, rate: float) -> None:
    p = gen.progress
    ctx.progress(
        f"{p.accepted}/{gen.spec.target_count} rows, {p.replies} replies, {sum(p.dropped.values())} dropped, "
        f"{rate:.1f} rows/s",
        accepted=p.accepted, target=gen.spec.target_count, replies=p.replies, inflight=inflight,
        dropped=sum(p.dropped.values()), tokens=p.total_tokens, cost_usd=round(p.cost_usd, 6),
        rows_per_second=round(rate, 3),
    )


def dedup_key(row: dict[str, Any]) -> str:
    if "instruction" in row:
        return row["instruction"]
    return "\n".join(turn["value"] for turn in row["conversations"] if turn["from"] == "human")
