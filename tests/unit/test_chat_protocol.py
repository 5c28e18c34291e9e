"""The chat protocol models and the service's hand-formatted stream chunks."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from belle_gateway.serving.protocol import ChatCompletionRequest, ChunkChoice, Delta
from belle_gateway.serving.service import ModelRef, _Run


def _run(name: str) -> _Run:
    run = _Run.__new__(_Run)  # only the fields the chunk formatters read
    run.id, run.created, run.model = "chatcmpl-1", 1700000000, ModelRef("id", name, "uri")
    return run


@pytest.mark.parametrize("text", ["plain", 'quote " and \\ backslash', "换行\n和 emoji 🙂", "\u0000\u001f"])
def test_the_fast_text_chunk_is_the_json_the_models_give(text):
    run = _run('model "名"')
    fast = run._text_chunk(3, text)
    slow = run._chunk([ChunkChoice(index=3, delta=Delta(content=text))])
    assert fast.startswith("data: ") and fast.endswith("\n\n")
    assert json.loads(fast[6:]) == json.loads(slow[6:])


def test_requests_are_checked_field_by_field():
    ok = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hi"}], stop="###",
                               max_completion_tokens=5)
    assert ok.stops == ["###"] and ok.requested_max_tokens == 5 and ok.temperature == 1.0
    bad = [
        ({"messages": []}, "messages"),
        ({"stop": ["a"] * 5}, "stop"),
        ({"stop": [""]}, "stop"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"tools": []}, "tools"),
        ({"n": 9}, "n"),
        ({"top_p": 0}, "top_p"),
    ]
    for override, field in bad:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **override}
        with pytest.raises(ValidationError) as caught:
            ChatCompletionRequest(**body)
        assert caught.value.errors()[0]["loc"][0] == field, override
    with pytest.raises(ValidationError, match="disagree"):
        ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "x"}], max_tokens=3,
                              max_completion_tokens=4)
