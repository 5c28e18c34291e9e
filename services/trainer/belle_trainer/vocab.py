"""Chinese vocabulary expansion for a pretrained causal LM with a byte-level BPE tokenizer.

BELLE-LLaMA-EXT gave LLaMA (a SentencePiece tokenizer) a Chinese vocabulary so that a Chinese
character stops costing several byte tokens. This module does the same for byte-level BPE tokenizers
such as SmolLM2's, which spends 15 tokens on 北京是中国的首都。 (9 characters).

The method:
1. `learn_new_tokens` trains a small BPE on Chinese text with the `tokenizers` library. Its
   pre-tokenizer isolates runs of CJK ideographs and splits the rest on whitespace, punctuation and
   digits, so every merge stays inside one Chinese run (and at most MAX_TOKEN_CHARS long). Its
   tokens that contain a CJK character and that the base does not already encode as one token are
   ranked by how many base tokens they save on the corpus: (times the trained tokenizer emits it)
   * (base tokens for its text - 1). Single characters the base spends several byte tokens on
   are candidates too: being frequent, they are often the biggest savers.
2. `expand_tokenizer` adds the winners to a copy of the base tokenizer as added tokens.
3. `expand_model` grows the embeddings (and the output layer when it is not tied) and starts each
   new row as the mean of the rows of the base pieces of that token's text, so a new token starts
   out meaning roughly what the model read before, and (output side) its logit is the mean of its
   pieces' logits: never above the best of them, so greedy decoding picks what the base picked.

Why added tokens rather than new BPE merges: a byte-level BPE only reaches a merge result when every
intermediate piece on the way there is itself in the vocabulary and the merges are ranked to build
it, so adding 北京 as a merge would mean adding the byte pieces of 北 and 京 and their merges too and
would shift the ranking of merges the base relies on. Added tokens are matched on the raw text before
the BPE model runs (leftmost-longest), decode to exactly their text, and leave every stretch of text
without them to the base model unchanged: English, code and emoji tokenize exactly as before.

One fix-up of the base: a decoder that `Fuse`s all tokens into one string before `ByteLevel` (what
the GGUF conversion of SmolLM2 produced) would decode the whole text as raw UTF-8 as soon as one
token (an added Chinese token) is not in the byte alphabet, leaving Ġ for every space. Without the
`Fuse` step `ByteLevel` maps each token on its own; base tokens decode to the same text as before.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, models, pre_tokenizers, trainers

# CJK ideographs: unified, extension A, compatibility, and the supplementary-plane extensions.
_CJK_CLASS = "[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]"
_CJK = re.compile(_CJK_CLASS)
# Longest token learned, in characters. Most Chinese words and idioms have at most four; longer
# merges are phrases repeated in the corpus (instruction templates) that rarely recur in new text:
# on the shipped corpus a limit of 4 saves more tokens on held-out text than no limit (1.70x vs 1.60x).
MAX_TOKEN_CHARS = 4


def _cjk_count(text: str) -> int:
    return len(_CJK.findall(text))


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    # Isolating CJK runs first keeps merges like "T模" (Latin + Chinese) out: an added token that
    # swallowed a Latin letter would change how the base tokenizes English next to Chinese.
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_CJK_CLASS + "+"), behavior="isolated"),
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Punctuation(),
        pre_tokenizers.Digits(individual_digits=True),
    ])


def _base_lengths(base_tokenizer: Any, texts: list[str]) -> list[int]:
    encoded = base_tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    return [len(ids) for ids in encoded]


def learn_new_tokens(texts: Iterable[str], base_tokenizer: Any, *, max_new_tokens: int,
                     min_frequency: int = 2) -> list[str]:
    """Up to `max_new_tokens` Chinese tokens learned from `texts` that the base tokenizer does not
    have, most base tokens saved on `texts` first. Deterministic for the same input."""
    texts = list(texts)
    if max_new_tokens <= 0 or not texts:
        return []
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = _pre_tokenizer()
    alphabet = len({ch for text in texts for ch in text})
    # Room for every merge the corpus supports at min_frequency (min_frequency and MAX_TOKEN_CHARS
    # end training first on all but huge corpora): candidates are cut by savings below, and a cap
    # that was reached would rank by merge order instead and make a smaller budget pick other tokens.
    trainer = trainers.BpeTrainer(vocab_size=alphabet + max(4 * max_new_tokens, 50_000),
                                  min_frequency=min_frequency, max_token_length=MAX_TOKEN_CHARS,
                                  show_progress=False, special_tokens=[])
    tokenizer.train_from_iterator(texts, trainer=trainer)

    # How often the trained tokenizer uses each token on the corpus: what adding it can save.
    uses: Counter[str] = Counter()
    for encoding in tokenizer.encode_batch(texts, add_special_tokens=False):
        uses.update(token for token in encoding.tokens if _CJK.search(token))
    candidates = sorted(token for token, count in uses.items() if count >= min_frequency)
    saved = {token: uses[token] * (length - 1)
             for token, length in zip(candidates, _base_lengths(base_tokenizer, candidates))}
    # The token text breaks ties, so equal savings order the same on every run.
    ranked = sorted((token for token in candidates if saved[token] > 0), key=lambda t: (-saved[t], t))
    return ranked[:max_new_tokens]


def _decoder_without_fuse(backend: Tokenizer) -> Any | None:
    """The backend's decoder without a `Fuse` step in front of `ByteLevel` (None if there is none to
    drop); see the module docstring."""
    spec = json.loads(backend.to_str())
    decoder = spec.get("decoder") or {}
    if decoder.get("type") != "Sequence":
        return None
    steps = [step["type"] for step in decoder["decoders"]]
    if "Fuse" not in steps or "ByteLevel" not in steps or steps.index("Fuse") > steps.index("ByteLevel"):
        return None
    decoder["decoders"] = [step for step in decoder["decoders"] if step["type"] != "Fuse"]
    return Tokenizer.from_str(json.dumps(spec)).decoder


def expand_tokenizer(base_tokenizer: Any, new_tokens: list[str]) -> Any:
    """A copy of `base_tokenizer` with `new_tokens` added as normal (non-special) tokens; the chat
    template, special tokens and the base's tokenization of all other text stay as they are."""
    tokenizer = copy.deepcopy(base_tokenizer)
    decoder = _decoder_without_fuse(tokenizer.backend_tokenizer)
    if decoder is not None:
        tokenizer.backend_tokenizer.decoder = decoder
    # normalized=False: matched on the raw text, exactly as written; single_word=False: Chinese has
    # no word boundaries to wait for.
    tokenizer.add_tokens([AddedToken(token, normalized=False, special=False, single_word=False)
                          for token in new_tokens])
    return tokenizer


def expand_model(model: Any, base_tokenizer: Any, new_tokenizer: Any) -> int:
    """Grow the model's embeddings (and untied output layer) to `new_tokenizer` and start each new
    token's rows as the mean of the base rows of the pieces the base tokenizer splits its text into.
    Returns how many rows were added."""
    import torch

    old_rows = model.get_input_embeddings().weight.shape[0]
    # A model may carry more rows than its tokenizer has tokens (padding for speed); never shrink.
    new_rows = max(len(new_tokenizer), old_rows)
    model.resize_token_embeddings(new_rows, mean_resizing=False)
    new_ids = range(len(base_tokenizer), len(new_tokenizer))
    texts = new_tokenizer.convert_ids_to_tokens(list(new_ids))
    pieces = base_tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []

    layers = [model.get_input_embeddings()]
    output = model.get_output_embeddings()
    if output is not None and output.weight is not layers[0].weight:
        layers.append(output)
    with torch.no_grad():
        for layer in layers:
            for name in ("weight", "bias"):
                param = getattr(layer, name, None)
                if param is None:
                    continue
                for token_id, piece_ids in zip(new_ids, pieces):
                    # Base rows only: every piece id is below len(base_tokenizer).
                    param[token_id] = param[piece_ids].mean(dim=0)
    return new_rows - old_rows


def tokens_per_char(tokenizer: Any, texts: Iterable[str]) -> float:
    """Tokens (no special tokens) per CJK character over `texts`."""
    texts = list(texts)
    chars = sum(_cjk_count(text) for text in texts)
    if chars == 0:
        raise ValueError("the texts have no CJK characters")
    return sum(_base_lengths(tokenizer, texts)) / chars


def expand_folder(source: Path, destination: Path, texts: list[str], *, max_new_tokens: int,
                  min_frequency: int = 2) -> dict:
    """Expand the model and tokenizer of the Hugging Face folder `source` with Chinese tokens learned
    from `texts` and save both to `destination`; returns a report measured on `texts`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype="auto")
    new_tokens = learn_new_tokens(texts, base_tokenizer, max_new_tokens=max_new_tokens,
                                  min_frequency=min_frequency)
    new_tokenizer = expand_tokenizer(base_tokenizer, new_tokens)
    vocab_before = model.get_input_embeddings().weight.shape[0]
    expand_model(model, base_tokenizer, new_tokenizer)
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(destination, safe_serialization=True)
    new_tokenizer.save_pretrained(destination)
    return {
        "added_tokens": len(new_tokens),
        "vocab_size_before": vocab_before,
        "vocab_size_after": model.get_input_embeddings().weight.shape[0],
        "tokens_per_char_before": tokens_per_char(base_tokenizer, texts),
        "tokens_per_char_after": tokens_per_char(new_tokenizer, texts),
        "examples": new_tokens[:20],
    }
