"""The generator's bookkeeping without a teacher: checkpoints, budgets, absorbing replies."""

from __future__ import annotations

import random

from belle_datagen.blocks import Task, render_self_instruct_prompt
from belle_datagen.checkpoint import GenerationLog
from belle_datagen.generator import Budget, Generator, Progress, estimate_tokens
from belle_datagen.inputs import GenerationInputs
from belle_datagen.seeds import bundled_seed_tasks, bundled_template
from belle_shared.artifacts import ArtifactStore
from belle_shared.llm_client import Reply
from belle_shared.specs import DatagenSpec

TEACHER = {"base_url": "http://127.0.0.1:9/v1", "model": "t"}


def _spec(**overrides) -> DatagenSpec:
    return DatagenSpec(**{"teacher": TEACHER, **overrides})


def _generator(**overrides) -> Generator:
    spec = _spec(**overrides)
    inputs = GenerationInputs(seeds=bundled_seed_tasks("zh"), template=bundled_template("self_instruct", "zh"),
                              topics=[])
    return Generator(spec, inputs, rng=random.Random(0))


def _reply(tasks: list[Task], *, first_index: int, truncated: bool = False) -> Reply:
    """A chat reply in the block format, made with the prompt renderer's own block layout."""
    rendered = render_self_instruct_prompt("{num_tasks}{examples}", [Task("占位", "", "占位")] * (first_index - 1) + tasks,
                                           num_tasks=20, language="zh")
    start = rendered.index(f"{first_index}. 指令")
    body = rendered[start:].rsplit("###", 1)[0]
    return Reply(text=body, truncated=truncated, prompt_tokens=100, completion_tokens=50)


def test_checkpoint_commits_rows_exactly_once(tmp_path):
    store = ArtifactStore(str(tmp_path))
    log = GenerationLog(store, "jobs/j1/datagen")
    assert log.load_state() is None
    log.commit([{"n": 1}, {"n": 2}], {"accepted": 2})
    log.commit([{"n": 3}], {"accepted": 3})
    # A chunk written by a worker killed before it wrote the state: not counted, and overwritten later.
    store.put_file(_write(tmp_path / "orphan.jsonl", '{"n": 99}\n'), "jobs/j1/datagen/chunk-000002.jsonl")

    resumed = GenerationLog(store, "jobs/j1/datagen")
    state = resumed.load_state()
    assert state["counters"] == {"accepted": 3}
    assert [row["n"] for row in resumed.committed_rows()] == [1, 2, 3]
    resumed.commit([{"n": 4}], {"accepted": 4})
    again = GenerationLog(store, "jobs/j1/datagen")
    again.load_state()
    assert [row["n"] for row in again.committed_rows()] == [1, 2, 3, 4]
    again.remove()
    assert GenerationLog(store, "jobs/j1/datagen").load_state() is None


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_absorb_filters_dedups_and_stops_at_target():
    gen = _generator(target_count=3)
    tasks = [
        Task("把数字 4821 写成中文数字", "", "四千八百二十一"),
        Task("请把数字 4821 写成中文数字", "", "四千八百二十一"),  # near-duplicate of the first
        Task("描述一下这张图片里的内容", "", "图片里有一只猫。"),  # blacklisted word
        Task("将下面这句话倒过来写", "今天天气很好", "好很气天天今"),
        Task("计算 17 乘以 23 等于多少", "", "391"),
        Task("把这几个数从小到大排列", "5, 3, 9", "3, 5, 9"),  # over the target: not kept
    ]
    added = gen.absorb(_reply(tasks, first_index=4), 4, (0.0, 0.0))
    assert added == 3
    assert [row["instruction"] for row in gen.pending] == [tasks[0].instruction, tasks[3].instruction,
                                                          tasks[4].instruction]
    assert gen.progress.dropped["near_duplicate"] == 1
    assert gen.progress.dropped["blacklisted_word"] == 1
    assert gen.target_reached
    assert gen.progress.prompt_tokens == 100 and gen.progress.completion_tokens == 50


def test_truncated_reply_loses_only_its_last_block():
    gen = _generator(target_count=100)
    tasks = [Task("把数字 305 写成中文数字", "", "三百零五"), Task("将下面这句话倒过来写", "春眠不觉晓", "晓觉不眠春")]
    added = gen.absorb(_reply(tasks, first_index=4, truncated=True), 4, (0.0, 0.0))
    assert added == 1
    assert gen.progress.dropped["truncated"] == 1


def test_seed_near_copies_are_dropped():
    gen = _generator(target_count=10)
    seed = gen.inputs.seeds[0]
    added = gen.absorb(_reply([Task(seed.instruction + "。", seed.input, seed.output)], first_index=4), 4, (0, 0))
    assert added == 0 and gen.progress.dropped["near_duplicate"] == 1


def test_prompt_mixes_generated_examples_once_there_are_some():
    gen = _generator(num_prompt_instructions=3, num_generated_examples=1)
    prompt, first = gen.next_prompt()
    assert first == 4 and prompt.rstrip().endswith("4. 指令:")
    gen.recent.append(Task("一个独一无二的生成任务指令", "", "输出"))
    prompt, _ = gen.next_prompt()
    assert "一个独一无二的生成任务指令" in prompt


def test_budget_never_admits_a_request_that_could_overrun():
    spec = _spec(max_total_tokens=1000, max_tokens=300)
    budget = Budget(spec)
    progress = Progress(prompt_tokens=200, completion_tokens=100)
    assert budget.admits(progress, 100) is None  # 300 used + 400 worst case <= 1000
    budget.reserved_tokens = 400
    assert budget.admits(progress, 100) == "token_budget"  # 300 + 400 reserved + 400 > 1000

    priced = _spec(max_cost_usd=0.01, max_tokens=1000,
                   teacher={**TEACHER, "prompt_price_per_million": 1.0, "completion_price_per_million": 4.0})
    cost_budget = Budget(priced)
    assert cost_budget.admits(Progress(cost_usd=0.005), 500) is None  # 0.005 + 0.0045 <= 0.01
    assert cost_budget.admits(Progress(cost_usd=0.006), 500) == "cost_budget"


def test_restore_rebuilds_dedup_state_and_counters():
    gen = _generator(target_count=5)
    gen.absorb(_reply([Task("把数字 9020 写成中文数字", "", "九千零二十")], first_index=4), 4, (0, 0))
    state = {"counters": gen.progress.to_dict()}
    resumed = _generator(target_count=5)
    resumed.restore(state, gen.pending)
    assert resumed.progress.accepted == 1 and resumed.progress.replies == 1
    again = resumed.absorb(_reply([Task("把数字 9020 写成中文数字。", "", "九千零二十")], first_index=4), 4, (0, 0))
    assert again == 0 and resumed.progress.dropped["near_duplicate"] == 1


def test_token_estimate_counts_cjk_characters_and_words():
    assert estimate_tokens("把 hello world 写成 42") == 6


def test_rate_limiter_spaces_request_starts():
    import asyncio
    import time

    from belle_shared.llm_client import RateLimiter

    async def five_starts() -> float:
        limiter = RateLimiter(per_minute=600)  # one start every 0.1 s
        started = time.monotonic()
        await asyncio.gather(*(limiter.wait() for _ in range(5)))
        return time.monotonic() - started

    assert 0.38 <= asyncio.run(five_starts()) < 1.0
    assert RateLimiter(None).interval == 0.0
