"""Candidate answers for the evaluator: the local entry point (`python -m belle_evaluator.generate`)
run as a real subprocess on the tiny model (full and GPTQ-quantized), and `endpoint_answers`
against the offline teacher."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from belle_evaluator.answer_config import (
    ANSWER_CONFIG_FILE,
    AnswerConfig,
    read_answers,
    write_questions,
)
from belle_shared.progress import PROGRESS_FILE, read_events
from belle_shared.specs import GenerationOptions, TeacherEndpoint
from belle_teacher.tasks import check, generate_task
from teacher import start_teacher

pytestmark = pytest.mark.slow

CONTEXT = 64          # the tiny model's max_position
MAX_NEW = 16
# Six questions of different lengths; the last one is longer than the whole context.
QUESTIONS = [
    "你好",
    "把305写成中文数字",
    "aaaaaaaaaa",
    "请把下面的句子翻译成英文：今天天气很好，我们去公园散步吧。",
    "1+1=?",
    "长" * 150,
]
LONG = 5


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from belle_trainer.tiny import init_tiny_model

    return init_tiny_model(tmp_path_factory.mktemp("models") / "tiny", arch="llama", seed=0, max_position=CONTEXT)


@pytest.fixture(scope="module")
def questions_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("questions") / "questions.jsonl"
    write_questions(QUESTIONS, path)
    return path


def _run(run_dir: Path, env: dict[str, str] | None = None, **config) -> tuple[int, list[dict], str]:
    """Write answers.json from `config`, run the entry point; (exit code, progress events, stderr)."""
    config_path = run_dir / ANSWER_CONFIG_FILE
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(config, default=str), encoding="utf-8")
    completed = subprocess.run([sys.executable, "-m", "belle_evaluator.generate", "--config", str(config_path)],
                               capture_output=True, text=True, timeout=240, env={**os.environ, **(env or {})})
    return completed.returncode, read_events(run_dir / PROGRESS_FILE), completed.stderr


def _config(model: Path, questions: Path, output: Path, **overrides) -> dict:
    config = AnswerConfig(model_path=model, questions_file=questions, output_file=output,
                          generation=GenerationOptions(max_new_tokens=MAX_NEW, temperature=0.0), batch_size=4)
    return {**config.model_dump(mode="json"), **overrides}


def _reference_greedy(model_path: Path) -> list[tuple[int, list[int]]]:
    """(prompt length, answer ids) per question, generated one at a time without padding, in this
    process: the prompt through the model's chat template, cut to its last CONTEXT - MAX_NEW ids."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    out = []
    for question in QUESTIONS:
        text = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                             add_generation_prompt=True)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][-(CONTEXT - MAX_NEW):]
        with torch.inference_mode():
            generated = model.generate(input_ids=torch.tensor([ids]), max_new_tokens=MAX_NEW, do_sample=False,
                                       pad_token_id=tokenizer.pad_token_id)[0, len(ids):].tolist()
        if tokenizer.eos_token_id in generated:
            generated = generated[:generated.index(tokenizer.eos_token_id)]
        out.append((len(ids), generated))
    return out


def test_batched_greedy_answers_match_one_at_a_time_generation(tiny_model, questions_file, tmp_path):
    from transformers import AutoTokenizer

    output = tmp_path / "answers.jsonl"
    code, events, stderr = _run(tmp_path / "run", **_config(tiny_model, questions_file, output))
    assert code == 0, stderr[-3000:]

    answers = read_answers(output)
    assert [a.id for a in answers] == [0, 1, 2, 3, 4, 5]  # input order, though batches are by length
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    reference = _reference_greedy(tiny_model)
    for answer, (prompt_tokens, ids) in zip(answers, reference, strict=True):
        assert answer.prompt_tokens == prompt_tokens
        assert answer.completion_tokens == len(ids)
        assert answer.answer == tokenizer.decode(ids, skip_special_tokens=True).strip()

    # The long question keeps its last 64 - 16 = 48 tokens, and says so.
    assert answers[LONG].prompt_tokens == 48
    assert "cut from the left" in answers[LONG].warning and "48" in answers[LONG].warning
    assert all(a.warning is None for a in answers[:LONG])
    # Both ways an answer ends are exercised: the EOS inside a batch (rows then finish apart) and
    # the token limit.
    assert any(a.completion_tokens < MAX_NEW for a in answers)
    assert any(a.completion_tokens == MAX_NEW for a in answers)

    # 6 questions in batches of 4: progress after 4, then 6.
    assert [e["event"] for e in events] == ["start", "progress", "progress", "done"]
    assert events[0] == {"event": "start", "total": 6, "model_type": "llama", "device": "cpu"}
    assert [e["done"] for e in events[1:3]] == [4, 6]
    assert events[-1]["answers"] == 6
    assert events[-1]["completion_tokens"] == sum(a.completion_tokens for a in answers)


def test_a_long_answer_limit_shares_the_context_with_the_prompt(tiny_model, questions_file, tmp_path):
    output = tmp_path / "answers.jsonl"
    code, _, stderr = _run(tmp_path / "run", **_config(tiny_model, questions_file, output, batch_size=6,
                                                         generation={"max_new_tokens": 40}))
    assert code == 0, stderr[-3000:]
    answers = read_answers(output)
    # 40 new tokens would leave 64 - 40 = 24 for the prompt, less than half the context: the long
    # prompt keeps 32, and the one batch (all six) may then generate 64 - 32 = 32 tokens.
    assert answers[LONG].prompt_tokens == 32
    assert all(a.completion_tokens <= 32 for a in answers)
    cut = [a for a in answers if a.completion_tokens == 32]
    assert cut and all("answer cut at 32 new tokens" in a.warning for a in cut)
    assert all(a.warning is None for a in answers[:LONG] if a.completion_tokens < 32)


def test_sampling_follows_the_seed(tiny_model, questions_file, tmp_path):
    sampling = {"max_new_tokens": MAX_NEW, "temperature": 1.0, "top_p": 0.9}
    texts = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        output = tmp_path / f"{name}.jsonl"
        code, _, stderr = _run(tmp_path / name, **_config(tiny_model, questions_file, output, generation=sampling,
                                                          seed=seed))
        assert code == 0, stderr[-3000:]
        texts[name] = [a.answer for a in read_answers(output)]
    assert texts["a"] == texts["b"]
    assert texts["a"] != texts["c"]


@pytest.mark.parametrize("change, expected", [
    ({"batch_size": 0}, "batch_size"),
    ({"beams": 4}, "beams"),                       # unknown fields are refused
    ({"model_path": "/nonexistent/model"}, "/nonexistent/model"),
])
def test_a_bad_config_is_an_error_event_and_exit_code_1(tiny_model, questions_file, tmp_path, change, expected):
    output = tmp_path / "answers.jsonl"
    code, events, _ = _run(tmp_path / "run", **_config(tiny_model, questions_file, output, **change))
    assert code == 1
    assert events[-1]["event"] == "error"
    assert expected in events[-1]["message"] and "\n" not in events[-1]["message"]
    assert not output.exists()


_QUANTIZE = textwrap.dedent("""
    import sys
    from gptqmodel import GPTQModel, QuantizeConfig
    from transformers import AutoTokenizer

    source, target = sys.argv[1], sys.argv[2]
    tokenizer = AutoTokenizer.from_pretrained(source)
    texts = ["把305写成中文数字", "请把下面的句子翻译成英文：今天天气很好。", "Sort these numbers: 5 3 9 1",
             "hello world, this is a test of quantization."] * 4
    calibration = [{"input_ids": ids, "attention_mask": [1] * len(ids)}
                   for ids in (tokenizer(t)["input_ids"] for t in texts)]
    model = GPTQModel.load(source, QuantizeConfig(bits=4, group_size=32), device="cpu")
    model.quantize(calibration, batch_size=1)
    model.save(target)
""")


@pytest.mark.skipif(importlib.util.find_spec("gptqmodel") is None, reason="gptqmodel is not installed")
def test_a_gptq_folder_generates_the_same_in_batches_and_one_at_a_time(tiny_model, questions_file, tmp_path):
    # gptqmodel sets environment variables when imported: quantize in a child, not in pytest.
    env = {"GPTQMODEL_CPU_WORKERS": "2"}  # 2-core machines, see docs FACTS
    quantized = tmp_path / "gptq"
    completed = subprocess.run([sys.executable, "-c", _QUANTIZE, str(tiny_model), str(quantized)],
                               capture_output=True, text=True, timeout=240, env={**os.environ, **env})
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert json.loads((quantized / "config.json").read_text())["quantization_config"]["bits"] == 4

    results = {}
    for batch_size in (4, 1):
        output = tmp_path / f"answers-{batch_size}.jsonl"
        code, events, stderr = _run(tmp_path / f"run-{batch_size}", env=env,
                                    **_config(quantized, questions_file, output, batch_size=batch_size))
        assert code == 0, stderr[-3000:]
        assert events[-1]["event"] == "done" and events[-1]["answers"] == 6
        results[batch_size] = read_answers(output)
    assert results[4] == results[1]
    # Same tokenizer as the source model: the same prompt lengths (the long one cut to 64 - 16).
    assert [a.prompt_tokens for a in results[4]][LONG] == 48
    assert all(0 <= a.completion_tokens <= MAX_NEW for a in results[4])
    assert sum(a.completion_tokens for a in results[4]) > 0


def test_endpoint_answers_come_back_in_question_order():
    from belle_evaluator.endpoint_answers import endpoint_answers

    rng = random.Random(3)
    tasks = [generate_task(rng, "zh") for _ in range(12)]
    questions = [t.instruction + ("\n" + t.input if t.input else "") for t in tasks]
    with start_teacher(seed=0, api_key="sk-test", latency=0.05, jitter=0.2) as teacher:
        endpoint = TeacherEndpoint(base_url=teacher.base_url, model="belle-teacher")
        answers = asyncio.run(endpoint_answers(endpoint, "sk-test", questions,
                                               GenerationOptions(max_new_tokens=64), concurrency=4))
    assert [a.id for a in answers] == list(range(12))
    # The teacher solves its own task family exactly: each answer is the one to its own question,
    # although replies arrive out of order (random jitter, 4 in flight).
    assert all(check(q, a.answer) for q, a in zip(questions, answers, strict=True)), [a.answer for a in answers]
    assert all(a.prompt_tokens > 0 and a.completion_tokens > 0 for a in answers)


def test_endpoint_answers_retry_transient_errors():
    from belle_evaluator.endpoint_answers import endpoint_answers
    from belle_shared.errors import RetryableJobError

    numbers = [305, 12, 7, 40, 9, 118, 23, 6, 51, 70, 88, 3]
    questions = [f"把{n}写成中文数字" for n in numbers]
    options = GenerationOptions(max_new_tokens=64)
    # Half the requests fail with 429 or 503. Without retries, 12 requests all succeed with
    # probability 0.5^12 = 1/4096; with 20 retries each, one fails for good with about 12 * 0.5^21.
    with start_teacher(seed=1, error_rate=0.5) as teacher:
        flaky = TeacherEndpoint(base_url=teacher.base_url, model="belle-teacher", max_retries=0)
        with pytest.raises(RetryableJobError) as raised:
            asyncio.run(endpoint_answers(flaky, None, questions, options, concurrency=4, backoff_base=0.01))
        assert raised.value.code == "candidate_unavailable"
        patient = flaky.model_copy(update={"max_retries": 20})
        answers = asyncio.run(endpoint_answers(patient, None, questions, options, concurrency=4, backoff_base=0.01))
    assert [a.answer for a in answers][:3] == ["三百零五", "十二", "七"]
    assert all(check(q, a.answer) for q, a in zip(questions, answers, strict=True))


def test_endpoint_answers_with_a_wrong_key_fail_the_call():
    from belle_evaluator.endpoint_answers import endpoint_answers
    from belle_shared.errors import JobError, RetryableJobError

    with start_teacher(seed=0, api_key="sk-test") as teacher:
        endpoint = TeacherEndpoint(base_url=teacher.base_url, model="belle-teacher", max_retries=3)
        with pytest.raises(JobError) as raised:
            asyncio.run(endpoint_answers(endpoint, "sk-wrong", ["你好"] * 5, GenerationOptions(), concurrency=2))
    error = raised.value
    assert not isinstance(error, RetryableJobError)  # a wrong key is not fixed by waiting
    assert error.code == "candidate_unauthorized" and error.param == "candidate.api_key_secret"
    assert "401" in error.message and "sk-wrong" not in error.message
