"""Packing: every sample lands once, position ids restart, labels never cross a sample boundary, and
a packed sequence gives each sample the logits (and loss) it gets alone, for LLaMA, BLOOM and Qwen2."""

from __future__ import annotations

import random
from collections import Counter

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, Qwen2Config  # noqa: E402

from belle_trainer.chat_format import IGNORE_INDEX, tokenize_conversation  # noqa: E402
from belle_trainer.packing import (  # noqa: E402
    PackingUnsupported, block_causal_mask, collate_packed, collate_padded, enable_packing, pack,
)
from belle_trainer.tiny import init_tiny_model  # noqa: E402

ATOL = 1e-4


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {arch: init_tiny_model(root / arch, arch=arch) for arch in ("llama", "bloom")}


@pytest.fixture(scope="module")
def samples(folders):
    """Real conversations of different lengths, tokenised in BELLE's format."""
    tokenizer = AutoTokenizer.from_pretrained(folders["llama"])
    rng = random.Random(0)
    rows = []
    for index in range(9):
        turns = []
        for _ in range(rng.randint(1, 3)):
            turns += [{"from": "human", "value": f"问题{index}：" + "为什么" * rng.randint(1, 12)},
                      {"from": "assistant", "value": f"Answer {index}: " + "because " * rng.randint(1, 15)}]
        rows.append({"conversations": turns})
    return [tokenize_conversation(tokenizer, row, 128, end_of_turn=tokenizer.eos_token) for row in rows]


def fake(lengths):
    return [{"input_ids": [100 + i] * n, "labels": [200 + i] * n} for i, n in enumerate(lengths)]


# ------------------------------------------------------------------------------ pack and collate


def test_pack_places_every_sample_once_with_restarting_positions(samples):
    packed = pack(samples, 160)
    assert len(packed) < len(samples)
    assert all(len(seq) <= 160 for seq in packed)
    seen = Counter()
    for seq in packed:
        assert sum(seq.seq_lens) == len(seq.input_ids) == len(seq.labels) == len(seq.position_ids)
        offset = 0
        for n in seq.seq_lens:
            assert seq.position_ids[offset:offset + n] == list(range(n))
            seen[tuple(seq.input_ids[offset:offset + n])] += 1
            # The first label of each sample is masked (it would be predicted from the previous
            # sample's last token); the rest are the sample's own labels.
            assert seq.labels[offset] == IGNORE_INDEX
            original = next(s for s in samples if s.input_ids == seq.input_ids[offset:offset + n])
            assert seq.labels[offset + 1:offset + n] == original.labels[1:]
            offset += n
    assert seen == Counter(tuple(s.input_ids) for s in samples)
    assert pack(samples, 160) == packed   # deterministic


def test_pack_is_best_fit_decreasing_and_refuses_long_samples():
    packed = pack(fake([6, 4, 5, 5, 3, 7, 10]), 10)
    assert sorted(sorted(seq.seq_lens) for seq in packed) == [[3, 7], [4, 6], [5, 5], [10]]
    assert pack(fake([]), 10) == []
    with pytest.raises(ValueError, match="max_length"):
        pack(fake([3, 11]), 10)
    with pytest.raises(ValueError, match="differ"):
        pack([{"input_ids": [1, 2], "labels": [1]}], 10)


def test_block_causal_mask_is_block_diagonal_and_causal():
    mask = block_causal_mask([2, 3], torch.float32, length=6)
    assert mask.shape == (1, 1, 6, 6)
    allowed = (mask[0, 0] == 0).int().tolist()
    assert allowed == [[1, 0, 0, 0, 0, 0],
                       [1, 1, 0, 0, 0, 0],
                       [0, 0, 1, 0, 0, 0],
                       [0, 0, 1, 1, 0, 0],
                       [0, 0, 1, 1, 1, 0],
                       [0, 0, 0, 0, 0, 1]]   # padding: a block of its own
    assert mask.min().item() == torch.finfo(torch.float32).min
    assert block_causal_mask([4], torch.bfloat16).dtype == torch.bfloat16
    with pytest.raises(ValueError):
        block_causal_mask([4, 4], length=7)


def test_collate_padded_pads_right_with_masked_labels():
    batch = collate_padded(fake([3, 5]), pad_token_id=3, pad_to_multiple_of=4)
    assert batch["input_ids"].tolist() == [[100] * 3 + [3] * 5, [101] * 5 + [3] * 3]
    assert batch["labels"].tolist() == [[200] * 3 + [IGNORE_INDEX] * 5, [201] * 5 + [IGNORE_INDEX] * 3]
    assert batch["attention_mask"].tolist() == [[1] * 3 + [0] * 5, [1] * 5 + [0] * 3]


def test_collate_packed_rows():
    packed = pack(fake([4, 3, 2]), 7)
    batch = collate_packed(packed, pad_token_id=3)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["position_ids"].shape == (2, 7)
    assert batch["attention_mask"].shape == (2, 1, 7, 7)
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 2], [0, 1, 0, 1, 2, 3, 4]]
    assert batch["labels"][1, 2:].tolist() == [IGNORE_INDEX] * 5
    assert batch["input_ids"][1, 2:].tolist() == [3] * 5
    plain = collate_packed(packed, pad_token_id=3, mask="position_ids")
    assert "attention_mask" not in plain and plain["use_cache"] is False


# ------------------------------------------------------------------------------ equivalence


def _max_packed_error(model, samples, mask, max_length=160):
    """Largest |logit difference| between each sample inside its packed row and the sample alone."""
    packed = pack(samples, max_length)
    batch = collate_packed(packed, pad_token_id=3, mask=mask)
    labels = batch.pop("labels")
    with torch.no_grad():
        logits = model(**batch).logits
    error = 0.0
    for row, seq in enumerate(packed):
        offset = 0
        for n in seq.seq_lens:
            ids = torch.tensor([seq.input_ids[offset:offset + n]])
            with torch.no_grad():
                alone = model(input_ids=ids).logits[0]
            error = max(error, (alone - logits[row, offset:offset + n]).abs().max().item())
            offset += n
    assert labels.shape == batch["input_ids"].shape
    return error, packed


CASES = [("llama", "eager", "block"), ("llama", "sdpa", "block"), ("llama", "sdpa", "position_ids"),
         ("bloom", "eager", "block")]


@pytest.mark.parametrize("arch,attn,mask", CASES)
def test_packed_logits_equal_each_sample_alone(folders, samples, arch, attn, mask):
    model = AutoModelForCausalLM.from_pretrained(folders[arch], attn_implementation=attn).eval()
    enable_packing(model, mask)
    error, packed = _max_packed_error(model, samples, mask)
    assert max(len(seq.seq_lens) for seq in packed) >= 3   # a real test: several samples share a row
    assert error < ATOL


def test_qwen2_packs_too():
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").eval()
    rng = random.Random(1)
    rows = [{"input_ids": [rng.randrange(4, 512) for _ in range(n)], "labels": [1] * n} for n in (9, 30, 4, 17, 22)]
    for mask in ("block", "position_ids"):
        enable_packing(model, mask)
        assert _max_packed_error(model, rows, mask, max_length=48)[0] < ATOL


def test_without_the_block_mask_samples_leak_into_each_other(folders, samples):
    """The control: the same packed rows with plain causal attention give other logits."""
    for arch in ("llama", "bloom"):
        model = AutoModelForCausalLM.from_pretrained(folders[arch]).eval()
        packed = pack(samples, 160)
        row = next(seq for seq in packed if len(seq.seq_lens) > 1)
        first, second = row.seq_lens[:2]
        with torch.no_grad():
            leaked = model(input_ids=torch.tensor([row.input_ids])).logits[0, first:first + second]
            alone = model(input_ids=torch.tensor([row.input_ids[first:first + second]])).logits[0]
        assert (leaked - alone).abs().max().item() > 100 * ATOL


def test_packed_loss_is_the_token_weighted_mean_of_sample_losses(folders, samples):
    model = AutoModelForCausalLM.from_pretrained(folders["llama"]).eval()
    enable_packing(model, "block")
    batch = collate_packed(pack(samples, 160), pad_token_id=3)
    with torch.no_grad():
        packed_loss = model(**batch).loss.item()
        total = count = 0.0
        for sample in samples:
            n = sum(1 for label in sample.labels[1:] if label != IGNORE_INDEX)
            loss = model(input_ids=torch.tensor([sample.input_ids]), labels=torch.tensor([sample.labels])).loss
            total += loss.item() * n
            count += n
    assert packed_loss == pytest.approx(total / count, abs=1e-5)


def test_bloom_needs_enable_packing_and_block_masks(folders, samples):
    model = AutoModelForCausalLM.from_pretrained(folders["bloom"]).eval()
    batch = collate_packed(pack(samples, 160), pad_token_id=3)
    batch.pop("position_ids")
    with pytest.raises(Exception):
        model(**batch)   # stock BLOOM builds ALiBi from a 2D mask only
    with pytest.raises(PackingUnsupported, match="ALiBi"):
        enable_packing(model, "position_ids")
    enable_packing(model, "block")
    enable_packing(model, "block")   # idempotent
    with torch.no_grad():
        assert model(**batch).logits.shape[:2] == batch["input_ids"].shape
        # Unpacked inputs (generation, evaluation) still take the stock path.
        assert model(input_ids=batch["input_ids"][:1, :5]).logits.shape == (1, 5, model.config.vocab_size)


def test_unverified_architectures_are_refused():
    model = AutoModelForCausalLM.from_config(GPT2Config(vocab_size=64, n_embd=32, n_layer=1, n_head=2))
    with pytest.raises(PackingUnsupported, match="gpt2"):
        enable_packing(model)
    with pytest.raises(ValueError):
        collate_packed(pack(fake([2]), 4), 0, mask="flash")
