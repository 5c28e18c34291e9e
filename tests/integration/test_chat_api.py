"""Chat through the gateway: `/v1/chat/completions` with the real `openai` client on a real port.

The model is a tiny random-init LLaMA built locally; the reference for every greedy reply is
transformers' own `generate` on the same folder, one request at a time. The proxy path forwards to
the offline teacher, a real OpenAI-compatible server in its own process.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import openai
import pytest

from belle_shared.models import register_model
from helpers import LiveGateway, wait_for
from teacher import start_teacher

pytestmark = pytest.mark.integration

CONTEXT = 256
QUESTIONS = [
    "你好",
    "请介绍一下你自己。",
    "hello world " * 3,
    "把这句话翻译成英文：今天天气很好，我们去公园散步吧。",
    "1+1=?",
    "写一首关于秋天的诗，" * 4,
    "x",
    "为什么天空是蓝色的？请详细解释，" * 6,
]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from belle_trainer.tiny import init_tiny_model

    return init_tiny_model(tmp_path_factory.mktemp("chat-models") / "tiny", arch="llama", seed=1,
                           max_position=CONTEXT)


@pytest.fixture(scope="module", params=["engine-process", "engine-thread"])
def live(settings, request):
    """A gateway on a real port; every test runs with the batching engine in a process of its own (the
    default) and in a thread of the gateway's process."""
    from belle_gateway.settings import GatewaySettings

    gateway = LiveGateway(GatewaySettings(**{**settings.model_dump(), "run_sweeper": False,
                                             "chat_max_batch_size": 8,
                                             "chat_engine_process": request.param == "engine-process"}))
    yield gateway
    gateway.stop()


@pytest.fixture
def chat_model(session_factory, team, tiny_folder) -> str:
    """The tiny model registered as one of the team's own models."""
    created, _ = team
    name = f"tiny-chat-{uuid.uuid4().hex[:6]}"
    with session_factory() as session:
        register_model(session, team_id=created.id, name=name, uri=str(tiny_folder))
        session.commit()
    return name


def _client(live, headers) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=headers["Authorization"].split()[1], max_retries=0)


class Reference:
    """transformers' generate on the same folder, one request at a time."""

    def __init__(self, folder):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()

    def prompt_ids(self, messages) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def greedy(self, messages, max_tokens: int) -> tuple[str, int]:
        ids = self.torch.tensor([self.prompt_ids(messages)])
        with self.torch.inference_mode():
            out = self.model.generate(input_ids=ids, attention_mask=self.torch.ones_like(ids), do_sample=False,
                                      max_new_tokens=max_tokens, eos_token_id=self.tokenizer.eos_token_id,
                                      pad_token_id=self.tokenizer.pad_token_id)
        new = out[0, ids.shape[1]:].tolist()
        return self.tokenizer.decode(new, skip_special_tokens=True), len(new)


@pytest.fixture(scope="module")
def reference(tiny_folder) -> Reference:
    return Reference(tiny_folder)


def _engine_handle(live, headers, model_name: str):
    """The pool's loaded model and engine for a registered model (by its registry id)."""
    model_id = httpx.get(f"{live.url}/v1/models/{model_name}", headers=headers).json()["belle_id"]
    pool = live.app.state.chat.pool
    assert model_id in pool.resident()
    return pool._handles[model_id]


def test_greedy_reply_equals_generate_with_and_without_streaming(live, team, chat_model, reference):
    _, headers = team
    client = _client(live, headers)
    messages = [{"role": "system", "content": "你是一个助手。"}, {"role": "user", "content": "你好"},
                {"role": "assistant", "content": "你好！有什么可以帮你？"}, {"role": "user", "content": "讲个笑话"}]
    expected, expected_tokens = reference.greedy(messages, 24)

    reply = client.chat.completions.create(model=chat_model, messages=messages, max_tokens=24, temperature=0)
    assert reply.object == "chat.completion" and reply.model == chat_model
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == expected
    assert reply.choices[0].finish_reason == ("length" if expected_tokens == 24 else "stop")
    prompt_tokens = len(reference.prompt_ids(messages))
    assert reply.usage.prompt_tokens == prompt_tokens  # the model's own chat template, multi-turn
    assert reply.usage.completion_tokens == expected_tokens
    assert reply.usage.total_tokens == prompt_tokens + expected_tokens

    stream = client.chat.completions.create(model=chat_model, messages=messages, max_tokens=24, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 3  # streamed piece by piece, not in one go
    assert "".join(pieces) == expected
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == \
        [reply.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == expected_tokens

    # The stricter streaming helper of the SDK accepts the chunks too.
    with client.chat.completions.stream(model=chat_model, messages=messages, max_tokens=24, temperature=0) as s:
        assert "".join(event.delta for event in s if event.type == "content.delta") == expected


def test_concurrent_requests_are_decoded_in_one_batch_with_one_at_a_time_outputs(live, team, chat_model, reference):
    _, headers = team
    client = _client(live, headers)
    replies: dict[int, str] = {}
    errors: list[BaseException] = []

    def ask(i: int) -> None:
        try:
            stream = client.chat.completions.create(
                model=chat_model, messages=[{"role": "user", "content": QUESTIONS[i]}], max_tokens=20 + i,
                temperature=0, stream=True)
            replies[i] = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        except BaseException as exc:  # reported below
            errors.append(exc)

    # Load the model first so that all requests meet in the engine, not in the loader.
    client.chat.completions.create(model=chat_model, messages=[{"role": "user", "content": "hi"}], max_tokens=1)
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(QUESTIONS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    for i, question in enumerate(QUESTIONS):
        expected, _ = reference.greedy([{"role": "user", "content": question}], 20 + i)
        assert replies[i] == expected, f"question {i}"
    handle = _engine_handle(live, headers, chat_model)
    assert handle.engine.peak_rows >= 4, "requests were not batched together"


def test_stop_strings_seeds_and_several_choices(live, team, chat_model, reference):
    _, headers = team
    client = _client(live, headers)
    messages = [{"role": "user", "content": "请介绍一下你自己。"}]
    full, _ = reference.greedy(messages, 30)
    stop = full[len(full) // 2: len(full) // 2 + 2]
    assert stop.strip(), full
    cut = client.chat.completions.create(model=chat_model, messages=messages, max_tokens=30, temperature=0, stop=[stop])
    assert cut.choices[0].message.content == full[: full.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    streamed = client.chat.completions.create(model=chat_model, messages=messages, max_tokens=30, temperature=0,
                                              stop=stop, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == full[: full.index(stop)]

    def sampled(seed, n=1):
        return client.chat.completions.create(model=chat_model, messages=messages, max_tokens=16, temperature=1.0,
                                              top_p=0.9, seed=seed, n=n)
    first, again, other = sampled(11), sampled(11), sampled(12)
    assert first.choices[0].message.content == again.choices[0].message.content
    assert first.choices[0].message.content != other.choices[0].message.content
    two = sampled(11, n=2)
    assert [c.index for c in two.choices] == [0, 1]
    assert two.choices[0].message.content == first.choices[0].message.content  # choice i samples with seed + i
    assert two.choices[0].message.content != two.choices[1].message.content
    assert two.usage.prompt_tokens == 2 * first.usage.prompt_tokens  # each choice reads the prompt
    assert 2 <= two.usage.completion_tokens <= 32


def test_bad_requests_are_400s_that_name_the_field(live, team, chat_model, session_factory, tiny_folder):
    _, headers = team
    url = f"{live.url}/v1/chat/completions"

    def post(body, **kwargs):
        return httpx.post(url, json=body, headers=kwargs.get("headers", headers), timeout=60)

    def error(response, status):
        assert response.status_code == status, response.text
        return response.json()["error"]

    user = [{"role": "user", "content": "hi"}]
    too_long = error(post({"model": chat_model, "messages": [{"role": "user", "content": "你好" * 400}]}), 400)
    assert too_long["code"] == "context_length_exceeded" and too_long["param"] == "messages"
    assert str(CONTEXT) in too_long["message"]
    over = error(post({"model": chat_model, "messages": user, "max_tokens": CONTEXT}), 400)
    assert over["code"] == "context_length_exceeded" and over["param"] == "max_tokens"
    assert error(post({"model": chat_model, "messages": [{"role": "robot", "content": "x"}]}), 400)["param"] == \
        "messages[0].role"
    assert error(post({"model": chat_model, "messages": []}), 400)["param"] == "messages"
    assert error(post({"model": chat_model, "messages": user, "logit_bias": {"1": 5}}), 400)["param"] == "logit_bias"
    assert error(post({"model": chat_model, "messages": user, "temperature": 3}), 400)["param"] == "temperature"
    assert "stream_options" in error(post({"model": chat_model, "messages": user,
                                           "stream_options": {"include_usage": True}}), 400)["message"]
    assert error(post({"model": chat_model, "messages": user, "stop": ["a", "b", "c", "d", "e"]}), 400)["param"] == "stop"
    assert error(post({"model": "no-such-model", "messages": user}), 404)["param"] == "model"
    assert error(post({"model": chat_model, "messages": user}, headers={}), 401)["code"] == "missing_api_key"

    # Another team's model is invisible: the same 404 as a model that does not exist.
    with session_factory() as session:
        from belle_shared.teams import create_team

        other, _ = create_team(session, name=f"other-{uuid.uuid4().hex[:6]}", secret=live.app.state.settings.secret_key)
        register_model(session, team_id=other.id, name="their-model", uri=str(tiny_folder))
        session.commit()
    assert error(post({"model": "their-model", "messages": user}), 404)["code"] == "model_not_found"


# Chat generation is left out of the OpenAPI fuzz run (test_openapi_fuzz.py: each request would decode);
# these are its malformed bodies instead: (raw body or JSON value, the param the 400 names).
USER = [{"role": "user", "content": "hi"}]
MALFORMED_CHAT_BODIES = [
    (b"{not json", None),
    (b"", None),
    (b"\xff\xfe{}", None),
    ([USER], None),
    ("just a string", None),
    ({"messages": USER}, "model"),
    ({"model": 42, "messages": USER}, "model"),
    ({"model": "{m}"}, "messages"),
    ({"model": "{m}", "messages": "hi"}, "messages"),
    ({"model": "{m}", "messages": [{"content": "hi"}]}, "messages[0].role"),
    ({"model": "{m}", "messages": [{"role": "user", "content": 7}]}, "messages[0].content"),
    ({"model": "{m}", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content"),
    ({"model": "{m}", "messages": [{"role": "user", "content": "a\u0000b"}]}, "messages[0].content"),
    ({"model": "{m}", "messages": [{"role": "user", "content": "\ud800"}]}, "messages[0].content"),
    ({"model": "{m}", "messages": USER, "max_tokens": 0}, "max_tokens"),
    ({"model": "{m}", "messages": USER, "max_tokens": 2**63}, "max_tokens"),
    ({"model": "{m}", "messages": USER, "max_tokens": "ten"}, "max_tokens"),
    ({"model": "{m}", "messages": USER, "temperature": -0.5}, "temperature"),
    ({"model": "{m}", "messages": USER, "temperature": "NaN"}, "temperature"),
    ({"model": "{m}", "messages": USER, "top_p": 0}, "top_p"),
    ({"model": "{m}", "messages": USER, "seed": 2**64}, "seed"),
    ({"model": "{m}", "messages": USER, "seed": 1.5}, "seed"),
    ({"model": "{m}", "messages": USER, "n": 0}, "n"),
    ({"model": "{m}", "messages": USER, "n": 10**9}, "n"),
    ({"model": "{m}", "messages": USER, "stop": 5}, "stop"),
    ({"model": "{m}", "messages": USER, "stop": [""]}, "stop"),
    ({"model": "{m}", "messages": USER, "stream": "yes"}, "stream"),
    ({"model": "{m}", "messages": USER, "presence_penalty": 1.0}, "presence_penalty"),
]


def test_malformed_chat_bodies_are_400s_on_a_kept_connection(live, team, chat_model):
    """Each malformed body is a 400 in OpenAI's shape naming the field where there is one, never a 5xx,
    and one client's connection serves them all (an error does not cost the next request)."""
    _, headers = team
    with httpx.Client(base_url=live.url, timeout=60, headers=headers) as http:
        for body, param in MALFORMED_CHAT_BODIES:
            if isinstance(body, bytes):
                response = http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
            else:
                raw = json.dumps(body).replace("{m}", chat_model)
                response = http.post("/v1/chat/completions", content=raw.encode(),
                                     headers={"content-type": "application/json"})
            assert response.status_code == 400, (body, response.status_code, response.text)
            error = response.json()["error"]
            assert error["type"] == "invalid_request_error" and error["message"], (body, error)
            if param is not None:
                assert error["param"] == param, (body, error)
        assert http.post("/v1/chat/completions", json={"model": chat_model, "messages": USER, "max_tokens": 2,
                                                       "temperature": 0}).status_code == 200


def test_a_client_that_disconnects_mid_stream_frees_its_slot(live, team, chat_model):
    _, headers = team
    body = {"model": chat_model, "messages": [{"role": "user", "content": "长一点"}], "max_tokens": 200,
            "temperature": 0, "stream": True}
    with httpx.Client(base_url=live.url, timeout=60) as http:
        http.post("/v1/chat/completions", headers=headers, json={**body, "stream": False, "max_tokens": 1})
        handle = _engine_handle(live, headers, chat_model)
        steps_before = handle.engine.steps
        started = time.monotonic()
        with http.stream("POST", "/v1/chat/completions", headers=headers, json=body) as response:
            lines = response.iter_lines()
            got = [line for line, _ in zip(lines, range(6)) if line.startswith("data: ")]
        assert len(got) >= 3
    wait_for(lambda: not handle.engine.busy and handle.users == 0, timeout=10, message="the slot to be freed")
    freed_after = time.monotonic() - started
    # An engine process reports its step count a moment later than it stops (seen under a loaded machine):
    # wait until the count is still, then check that it stopped long before the 200 tokens asked for.
    def still() -> bool:
        before = handle.engine.steps
        time.sleep(0.5)
        return handle.engine.steps == before

    wait_for(still, timeout=10, message="the engine's step count to settle")
    decoded = handle.engine.steps - steps_before
    assert decoded < 100, f"the engine decoded {decoded} steps for a client that left after 6 lines"
    assert freed_after < 10


def test_an_engine_process_that_dies_fails_its_requests_and_is_replaced(live, team, chat_model, reference):
    import os
    import signal

    from belle_gateway.serving.process_engine import ProcessEngine

    _, headers = team
    client = _client(live, headers)
    client.chat.completions.create(model=chat_model, messages=[{"role": "user", "content": "hi"}], max_tokens=1)
    handle = _engine_handle(live, headers, chat_model)
    if not isinstance(handle.engine, ProcessEngine):
        pytest.skip("the engine runs in the gateway's process here")
    assert handle.engine.pid != os.getpid()

    stream = client.chat.completions.create(model=chat_model, messages=[{"role": "user", "content": "长一点"}],
                                            max_tokens=200, temperature=0, stream=True)
    chunks = iter(stream)
    next(chunks)  # the reply has started
    os.kill(handle.engine.pid, signal.SIGKILL)
    with pytest.raises(openai.APIError, match="engine process exited"):
        for _ in chunks:
            pass
    wait_for(lambda: not handle.engine.alive and not handle.engine.busy, timeout=10, message="the engine to be gone")

    # The next request loads the model again, in a new process, and answers as before.
    messages = [{"role": "user", "content": QUESTIONS[1]}]
    reply = client.chat.completions.create(model=chat_model, messages=messages, max_tokens=12, temperature=0)
    assert reply.choices[0].message.content == reference.greedy(messages, 12)[0]
    again = _engine_handle(live, headers, chat_model)
    assert again is not handle and again.engine.alive and again.engine.pid != handle.engine.pid


def test_the_least_recently_used_idle_model_is_unloaded(tmp_path, tiny_folder):
    from belle_gateway.serving.pool import ModelPool
    from belle_shared.artifacts import ArtifactStore

    pool = ModelPool(store=ArtifactStore(str(tmp_path / "artifacts")), cache_dir=tmp_path / "cache",
                     engine_kind="batched", max_resident=2, max_batch_size=4)
    try:
        a = pool.acquire("a", str(tiny_folder))
        b = pool.acquire("b", str(tiny_folder))
        pool.release(b)
        pool.acquire("a", str(tiny_folder))  # a is now the most recently used (and in use twice)
        pool.release(a)
        pool.release(a)
        c = pool.acquire("c", str(tiny_folder))
        assert pool.resident() == ["a", "c"]  # b was the least recently used
        a2 = pool.acquire("a", str(tiny_folder))
        assert a2 is a  # still resident: not loaded again
        from belle_gateway.serving.pool import PoolBusy

        with pytest.raises(PoolBusy):  # a and c are both in use: nothing may be unloaded
            pool.acquire("d", str(tiny_folder))
        pool.release(c)
        pool.acquire("d", str(tiny_folder))
        assert pool.resident() == ["a", "d"]
    finally:
        pool.close()


def test_a_proxy_route_forwards_to_an_openai_compatible_server(settings, team, chat_model):
    from belle_gateway.settings import GatewaySettings

    _, headers = team
    with start_teacher(latency=0.0, seed=3) as teacher:
        gateway = LiveGateway(GatewaySettings(**{**settings.model_dump(), "run_sweeper": False, "chat_engine": "off",
                                                 "chat_proxy_routes": {chat_model: {"url": teacher.base_url,
                                                                                    "model": "belle-teacher"}}}))
        try:
            client = _client(gateway, headers)
            direct = openai.OpenAI(base_url=teacher.base_url, api_key="unused", max_retries=0)
            messages = [{"role": "user", "content": "计算 12 + 30 等于多少？"}]
            expected = direct.chat.completions.create(model="belle-teacher", messages=messages, temperature=0)
            reply = client.chat.completions.create(model=chat_model, messages=messages, temperature=0)
            assert reply.choices[0].message.content == expected.choices[0].message.content
            assert reply.choices[0].message.content  # the teacher said something
            stream = client.chat.completions.create(model=chat_model, messages=messages, temperature=0, stream=True)
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == \
                expected.choices[0].message.content
            # The gateway still checks keys and access before forwarding anything.
            denied = httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": chat_model, "messages": messages})
            assert denied.status_code == 401
            unknown = httpx.post(f"{gateway.url}/v1/chat/completions", headers=headers,
                                 json={"model": "not-registered", "messages": messages})
            assert unknown.status_code == 404
        finally:
            gateway.stop()
    # The upstream is gone: a 502 in OpenAI's shape, not a 500.
    gateway = LiveGateway(GatewaySettings(**{**settings.model_dump(), "run_sweeper": False, "chat_engine": "off",
                                             "chat_proxy_routes": {"*": {"url": teacher.base_url}}}))
    try:
        gone = httpx.post(f"{gateway.url}/v1/chat/completions", headers=headers,
                          json={"model": chat_model, "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
        assert gone.status_code == 502 and gone.json()["error"]["code"] == "upstream_unreachable"
    finally:
        gateway.stop()
