"""What generating code reads off a loaded model and its tokenizer: the prompt of a conversation
(through the model's own chat template), the ids that end a reply, and the context length.

The gateway's chat engine and the evaluator's answer generation both use these, so a model is
prompted and stopped the same way when it is served and when it is scored. Duck-typed on
transformers' objects: nothing here imports torch or transformers.
"""

from __future__ import annotations

from typing import Any

# Tokenizers without a real limit report this huge number (transformers' VERY_LARGE_INTEGER).
_NO_LIMIT = 1_000_000_000


def render_chat(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """The token ids of a conversation with the generation prompt, through the tokenizer's chat template."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # The template writes the special tokens it wants (a BOS, role markers) as text; adding the
    # tokenizer's own on top would double them.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every id that ends a reply: the tokenizer's EOS and the generation config's (chat models
    often add an end-of-turn token there)."""
    ids: list[int] = []
    for value in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        for token in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(token, int) and token not in ids:
                ids.append(token)
    return ids


def context_length(model: Any, tokenizer: Any) -> int | None:
    """The most positions the model handles: its config's limit, else the tokenizer's; None if
    neither says (BLOOM's ALiBi has no fixed limit)."""
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(model.config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < _NO_LIMIT:
        return limit
    return None


def generation_settings(*, max_new_tokens: int, temperature: float, top_p: float, eos_ids: list[int] | None,
                        pad_id: int) -> dict[str, Any]:
    """`GenerationConfig` arguments for OpenAI-style options (greedy when the temperature is 0).

    Every knob is set, because `generate()` fills what is left unset from the model folder's own
    generation config (a top_k, a repetition penalty): two models, or a model and an endpoint, then
    answer under the same rules. The greedy values of the sampling knobs are transformers' neutral
    defaults (no warning). `eos_ids` None generates to `max_new_tokens`: passed as an empty list, since
    a None is one of the knobs `generate()` fills from the folder (a real model's EOS then ended an
    `ignore_eos` reply early)."""
    sample = temperature > 0
    return {
        "max_new_tokens": max_new_tokens,
        "do_sample": sample,
        "num_beams": 1,
        "temperature": temperature if sample else 1.0,
        "top_p": top_p if sample else 1.0,
        "top_k": 0 if sample else 50,  # 0 switches top-k off: OpenAI-style options have none
        "typical_p": 1.0,
        "repetition_penalty": 1.0,
        "no_repeat_ngram_size": 0,
        "eos_token_id": list(eos_ids) if eos_ids is not None else [],
        "pad_token_id": pad_id,
    }
