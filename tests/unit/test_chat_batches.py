"""The chat engine's batches on tiny local models, against transformers' one-at-a-time `generate`.

`PackedBatch` (LLaMA): prompts joining together and at different steps, a sequence leaving from the
middle slot, slots growing past their first capacity, a cancelled sequence; `PaddedBatch` (BLOOM,
whose ALiBi attention cannot be packed) behind `BatchEngine`. Every greedy reply must be token for
token the reply of `generate` on the same prompt.
"""

from __future__ import annotations

import threading

import pytest

torch = pytest.importorskip("torch")

from belle_gateway.serving.engine import (  # noqa: E402
    BatchEngine,
    LoadedModel,
    SamplingOptions,
    Sequence,
    pick_token,
)
from belle_gateway.serving.packed import PackedBatch, packed_supported  # noqa: E402
from belle_gateway.serving.padded import PaddedBatch  # noqa: E402

PROMPTS = ["你好", "请介绍一下你自己。" * 5, "hello world " * 12, "x", "写一首关于秋天的诗，" * 9]


def _tiny(tmp_path_factory, arch: str):
    from belle_trainer.tiny import init_tiny_model

    return init_tiny_model(tmp_path_factory.mktemp(f"batch-{arch}") / arch, arch=arch, seed=3, max_position=512)


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> LoadedModel:
    return LoadedModel(_tiny(tmp_path_factory, "llama"))


@pytest.fixture(scope="module")
def llama_onednn(llama) -> LoadedModel:
    """The same folder with its linear layers on oneDNN, as the engine serves it on a CPU."""
    from belle_gateway.serving.cpu_linear import use_onednn_linears

    loaded = LoadedModel(llama.folder)
    assert use_onednn_linears(loaded.model, rows=4) > 0
    return loaded


@pytest.fixture(scope="module")
def reference(tmp_path_factory, llama):
    """A second copy of the same folder, left with transformers' own attention, for `generate`."""
    return LoadedModel(llama.folder)


def _prompt(loaded: LoadedModel, text: str) -> list[int]:
    return loaded.render([{"role": "user", "content": text}])


def _generate(loaded: LoadedModel, ids: list[int], max_tokens: int) -> list[int]:
    tensor = torch.tensor([ids])
    with torch.inference_mode():
        out = loaded.model.generate(input_ids=tensor, attention_mask=torch.ones_like(tensor), do_sample=False,
                                    max_new_tokens=max_tokens, min_new_tokens=max_tokens, pad_token_id=loaded.pad_id)
    return out[0, len(ids):].tolist()


def _sequence(ids: list[int], max_tokens: int, loaded: LoadedModel) -> Sequence:
    options = SamplingOptions(max_tokens=max_tokens, temperature=0, ignore_eos=True)
    return Sequence(ids, options, lambda event: None, loaded.decode)


def _run(batch, schedule: dict[int, list[Sequence]], cancel_at: dict[int, Sequence] | None = None) -> None:
    """Step the batch until every sequence is done; `schedule[step]` joins before that step."""
    step = 0
    pending = sum(len(v) for v in schedule.values())
    with torch.inference_mode():
        while pending or batch.active:
            joining = schedule.get(step, [])
            pending -= len(joining)
            if cancel_at and step in cancel_at:
                cancel_at[step].cancel()
            batch.step(joining, pick_token)
            step += 1
            assert step < 500


def test_the_packed_path_is_taken_for_llama_only(llama, tmp_path_factory):
    assert packed_supported(llama.model)
    bloom = LoadedModel(_tiny(tmp_path_factory, "bloom"))
    assert not packed_supported(bloom.model)


@pytest.fixture(scope="module")
def native_kernel():
    from belle_gateway.serving.native_attention import load_decode_attention

    kernel = load_decode_attention()
    assert kernel is not None, "this machine has a C compiler: the native kernel must load"
    return kernel


# torch: the model as loaded; onednn: its linear layers on oneDNN; served: oneDNN and the native decode
# attention, as the engine serves a float32 model on a CPU by default.
@pytest.mark.parametrize("kernels", ["torch", "onednn", "served"])
def test_packed_replies_equal_generate_when_joining_together_and_apart(request, kernels, reference):
    llama = request.getfixturevalue("llama" if kernels == "torch" else "llama_onednn")
    calls = []
    if kernels == "served":
        kernel = request.getfixturevalue("native_kernel")

        def attention(*args):
            calls.append(args[0].shape[0])  # decoding rows in this call
            return kernel(*args)
    else:
        attention = None
    lengths = [9, 14, 6, 11, 8]
    prompts = [_prompt(llama, text) for text in PROMPTS]
    expected = [_generate(reference, ids, n) for ids, n in zip(prompts, lengths)]
    # 16 columns: the slots must grow.
    batch = PackedBatch(llama, max_rows=4, capacity=16, decode_attention=attention)
    seqs = [_sequence(ids, n, llama) for ids, n in zip(prompts, lengths)]
    # Three prompts in one forward, one joining mid-way, the last once a slot frees (max 4 rows).
    _run(batch, {0: seqs[:3], 3: [seqs[3]], 7: [seqs[4]]})
    assert [seq.reply.ids for seq in seqs] == expected
    assert batch.peak_rows == 4
    assert batch.cache.capacity >= max(len(ids) + n for ids, n in zip(prompts, lengths))
    if kernels == "served":  # every layer of every step with running rows, up to all 4 rows at once
        assert len(calls) >= 10 * llama.model.config.num_hidden_layers and max(calls) == 4
    assert not batch.active and not batch.lengths


@pytest.mark.parametrize("attention", ["sdpa", "native"])
def test_a_sequence_leaving_the_middle_slot_moves_the_last_one_in(request, attention, llama, reference):
    prompts = [_prompt(llama, text) for text in PROMPTS[:4]]
    lengths = [12, 3, 12, 10]  # slot 1 finishes first; slot 3 moves into it
    expected = [_generate(reference, ids, n) for ids, n in zip(prompts, lengths)]
    kernel = request.getfixturevalue("native_kernel") if attention == "native" else None
    batch = PackedBatch(llama, max_rows=4, decode_attention=kernel)
    seqs = [_sequence(ids, n, llama) for ids, n in zip(prompts, lengths)]
    with torch.inference_mode():
        batch.step(seqs, pick_token)
        batch.step([], pick_token)
        batch.step([], pick_token)  # the third token ends slot 1
        assert batch.active == [seqs[0], seqs[3], seqs[2]]
        assert batch.lengths == [len(prompts[0]) + 2, len(prompts[3]) + 2, len(prompts[2]) + 2]
    _run(batch, {})
    assert [seq.reply.ids for seq in seqs] == expected


def test_a_cancelled_sequence_leaves_before_the_next_forward(llama, reference):
    prompts = [_prompt(llama, text) for text in PROMPTS[:3]]
    batch = PackedBatch(llama, max_rows=4)
    seqs = [_sequence(ids, 10, llama) for ids in prompts]
    _run(batch, {0: seqs}, cancel_at={2: seqs[0]})
    assert len(seqs[0].reply.ids) == 2 and not seqs[0].finished
    assert [seq.reply.ids for seq in seqs[1:]] == [_generate(reference, ids, 10) for ids in prompts[1:]]


def test_the_padded_fallback_serves_bloom_in_a_batch(tmp_path_factory):
    bloom = LoadedModel(_tiny(tmp_path_factory, "bloom"))
    prompts = [_prompt(bloom, text) for text in PROMPTS]
    expected = [_generate(bloom, ids, 8) for ids in prompts]
    engine = BatchEngine(bloom, max_batch_size=4, prefill_tokens=8)  # small budget: prompts join over steps
    assert isinstance(engine.batch, PaddedBatch)
    done = threading.Semaphore(0)
    seqs = []
    for ids in prompts:
        seq = Sequence(ids, SamplingOptions(max_tokens=8, temperature=0, ignore_eos=True),
                       lambda event: event["type"] == "done" and done.release(), bloom.decode)
        seqs.append(seq)
        engine.submit(seq)
    for _ in seqs:
        assert done.acquire(timeout=60)
    engine.stop()
    assert [seq.reply.ids for seq in seqs] == expected
    assert engine.peak_rows >= 2


def test_the_sequential_engine_generates_past_a_real_models_eos_when_asked(real_model):
    """`ignore_eos` on the sequential engine: SmolLM2's own generation config names an EOS, which
    `generate()` used to fill in when the request left it unset, ending the reply early."""
    from belle_gateway.serving.engine import SequentialEngine

    loaded = LoadedModel(real_model)
    engine = SequentialEngine(loaded)
    prompt = loaded.render([{"role": "user", "content": "Say hi."}])
    try:
        finished = {}
        for ignore_eos in (False, True):
            done = threading.Event()

            def emit(event, ignore_eos=ignore_eos, done=done):
                if event["type"] in ("done", "error"):
                    finished[ignore_eos] = event
                    done.set()

            engine.submit(Sequence(prompt, SamplingOptions(max_tokens=60, temperature=0, ignore_eos=ignore_eos),
                                   emit, loaded.decode))
            assert done.wait(120)
    finally:
        engine.stop()
    # The model ends its greeting with an EOS well before 60 tokens; asked to ignore it, it goes on.
    assert finished[False]["type"] == "done" and finished[False]["finish_reason"] == "stop"
    assert finished[False]["completion_tokens"] < 60
    assert finished[True] == {"type": "done", "finish_reason": "length", "completion_tokens": 60}
