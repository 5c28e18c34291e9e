"""A tiny random-init causal LM with its own tokenizer, built locally in seconds (no downloads).

    belle model init --arch llama --out models/tiny-llama         # the CLI around `init_tiny_model`

The tokenizer is a byte-level BPE trained on the bundled corpus (`data/tokenizer_corpus.txt`,
Chinese and English, the offline teacher's task wording included), so any text round-trips and the
texts the platform trains on tokenize compactly. It carries BELLE's chat template. The model is a
LLaMA or BLOOM of the given size with random weights: useless for chat, enough to run every piece
of the platform (training, LoRA, DeepSpeed, quantization, evaluation) for real on a CPU.

Same arguments, same seed, same library versions: byte-identical weights and tokenizer.
"""

from __future__ import annotations

import hashlib
import json
import math
from importlib import resources
from pathlib import Path

from belle_shared.chat_template import BELLE_TEMPLATE

ARCHITECTURES = ("llama", "bloom")
UNK, BOS, EOS, PAD = "<unk>", "<s>", "</s>", "<pad>"
SPECIAL_TOKENS = [UNK, BOS, EOS, PAD]  # ids 0..3, LLaMA's order for the first three
CORPUS = "data/tokenizer_corpus.txt"
DOC_SEPARATOR = "\n\n\n"  # between documents of the corpus (make_corpus.py)
METADATA = "belle_model.json"

# Pre-tokenizer: single digits, runs of letters (CJK included), runs of other symbols, runs of
# whitespace. A single space after a word or symbol stays with it ("Assistant: " ends in the
# pre-token ": "), unlike GPT-2's leading-space rule: then the reply after "Assistant: " starts a
# fresh pre-token, so the prompt and the reply tokenise apart exactly as they do together, and a
# generation prompt ending in "Assistant: " is tokenised as it was in training.
PRETOKENIZE_PATTERN = r"\p{N}|[^\s\p{L}\p{N}]+ ?|\p{L}+ ?|\s+"
# "chars": every letter (CJK or Latin) and digit its own pre-token, so a token is one character (or
# a run of punctuation / whitespace). Texts get longer, but a tiny model then sees each character:
# reversing, counting, changing case or writing 305 as 三百零五 become maps over single tokens instead
# of over BPE pieces whose spelling it would first have to learn (docs/learning.md measures it).
PRETOKENIZE_PATTERNS = {"words": PRETOKENIZE_PATTERN, "chars": r"\p{N}|\p{L}|[^\s\p{L}\p{N}]+ ?|\s+"}


def corpus_text() -> str:
    return resources.files("belle_trainer").joinpath(CORPUS).read_text(encoding="utf-8")


def train_tokenizer(vocab_size: int = 4096, *, model_max_length: int = 2048, pretokenize: str = "words"):
    """A byte-level BPE `PreTrainedTokenizerFast` with BELLE's chat template, trained on the corpus;
    `pretokenize` picks the pre-tokenizer (`PRETOKENIZE_PATTERNS`)."""
    if pretokenize not in PRETOKENIZE_PATTERNS:
        raise ValueError(f"pretokenize must be one of {tuple(PRETOKENIZE_PATTERNS)}, not {pretokenize!r}")
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERNS[pretokenize]), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: nothing is ever unknown
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus_text().split(DOC_SEPARATOR), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token=UNK, bos_token=BOS, eos_token=EOS, pad_token=PAD,
        chat_template=BELLE_TEMPLATE,
        model_max_length=model_max_length,
        padding_side="right",
        # Decoding must give back the exact text (no " ." -> "." clean-up).
        clean_up_tokenization_spaces=False,
    )


def _llama_intermediate(hidden_size: int) -> int:
    """LLaMA's MLP width: 8/3 of the hidden size, rounded up to a multiple of 32."""
    return 32 * math.ceil(8 * hidden_size / 3 / 32)


def build_config(arch: str, *, vocab_size: int, hidden_size: int, num_layers: int, num_heads: int,
                 max_position: int, token_ids: dict[str, int]):
    """The model config; embeddings tied as each architecture does (BLOOM yes, LLaMA no)."""
    from transformers import BloomConfig, LlamaConfig

    if arch == "llama":
        return LlamaConfig(
            vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=_llama_intermediate(hidden_size),
            num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_heads,
            max_position_embeddings=max_position, tie_word_embeddings=False, **token_ids)
    if arch == "bloom":
        # BLOOM has no position embeddings (ALiBi), so no maximum length in its config.
        return BloomConfig(vocab_size=vocab_size, hidden_size=hidden_size, n_layer=num_layers, n_head=num_heads,
                           tie_word_embeddings=True, **token_ids)
    raise ValueError(f"arch must be one of {ARCHITECTURES}, not {arch!r}")


def init_tiny_model(out_dir: str | Path, *, arch: str = "llama", hidden_size: int = 128, num_layers: int = 2,
                    num_heads: int = 4, vocab_size: int = 4096, seed: int = 0, max_position: int = 2048,
                    pretokenize: str = "words", overwrite: bool = False) -> Path:
    """Train the tokenizer, build a random-init model, save both (safetensors) and `belle_model.json`
    into `out_dir`; returns the folder. Refuses a non-empty folder unless `overwrite`."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {ARCHITECTURES}, not {arch!r}")
    if hidden_size < 1 or num_layers < 1 or num_heads < 1 or hidden_size % num_heads:
        raise ValueError("hidden_size must be a positive multiple of num_heads; num_layers must be positive")
    if vocab_size < 260 + len(SPECIAL_TOKENS):
        raise ValueError("vocab_size must leave room for the 256 bytes, the special tokens and some merges")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty")

    import tokenizers
    import torch
    import transformers

    tokenizer = train_tokenizer(vocab_size, model_max_length=max_position, pretokenize=pretokenize)
    token_ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                 "pad_token_id": tokenizer.pad_token_id}
    config = build_config(arch, vocab_size=len(tokenizer), hidden_size=hidden_size, num_layers=num_layers,
                          num_heads=num_heads, max_position=max_position, token_ids=token_ids)

    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    for name, value in token_ids.items():
        setattr(model.generation_config, name, value)

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    metadata = {
        "made_by": "belle_trainer.tiny.init_tiny_model",
        "arch": arch,
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "num_heads": num_heads,
        "vocab_size": len(tokenizer),
        "vocab_size_requested": vocab_size,
        "max_position": max_position,
        "seed": seed,
        "parameters": sum(p.numel() for p in model.parameters()),
        "tie_word_embeddings": bool(config.tie_word_embeddings),
        "tokenizer": {"type": "byte-level BPE", "pretokenize": pretokenize,
                      "pretokenize_pattern": PRETOKENIZE_PATTERNS[pretokenize],
                      "special_tokens": SPECIAL_TOKENS},
        "chat_format": "belle",
        "corpus_sha256": hashlib.sha256(corpus_text().encode("utf-8")).hexdigest(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__},
    }
    (out / METADATA).write_text(json.dumps(metadata, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out
