"""From generated token ids to the text a client sees: incremental decoding, stop strings, finish reasons.

One `ReplyText` per choice. After each new token the engine calls `add(ids)`; it returns the text that
may be sent now. The reply is decoded incrementally: only a window of the last few tokens is decoded
per token (with the tokens before it as context, so a tokenizer that drops a word's leading space at
the start of a text keeps it here), not the whole reply each time, which for a reply of n tokens
was O(n^2) work on the gateway (2,048 tokens: ~0.7 CPU-seconds per reply).

Two kinds of text are held back until the next token settles them: a tail that is still an
incomplete UTF-8 character (byte-level tokenizers decode it as U+FFFD), and a tail that could
be the start of a stop string. A stop string ends the reply; it and everything after it are never
sent. A template may write the start of a reply itself (BELLE's format on a byte-level BPE tokenizer
ends its prompt in "Assistant:" and the reply starts with the space: `belle_shared.chat_template`);
that `prefix` is not the model's answer and is not sent. Standard library only: the decoder is passed in.
"""

from __future__ import annotations

from typing import Callable, Sequence

REPLACEMENT = "\ufffd"


class ReplyText:
    def __init__(self, decode: Callable[[Sequence[int]], str], stops: Sequence[str] = (), *, prefix: str = ""):
        self._decode = decode
        self._stops = [s for s in stops if s]
        self._prefix = prefix
        self.ids: list[int] = []
        self.sent = ""  # the text the client has (a prefix of the reply)
        self.stopped = False  # a stop string was seen
        # Incremental decoding: `_settled` is the text of ids[:_read]; ids[_context:_read] (decoding
        # to `_context_text`) is decoded again in front of each new tail, as context.
        self._settled = ""
        self._context = 0
        self._read = 0
        self._context_text = ""

    def add(self, token_id: int) -> str:
        """Take one generated token; return the new text that may be sent (often '')."""
        self.ids.append(token_id)
        text = self._visible(self._text_so_far())
        cut = self._first_stop(text)
        if cut is not None:
            self.stopped = True
            return self._advance(text[:cut])
        return self._advance(text[: len(text) - self._held_back(text)])

    def finish(self) -> str:
        """The rest of the text once generation has ended (the held-back tail, if no stop string cut it).

        An incomplete character at the very end stays U+FFFD, as `tokenizer.decode` gives it, so the
        reply is exactly the decoded tokens."""
        if self.stopped:
            return ""
        return self._advance(self._visible(self._decode(self.ids)))

    @property
    def text(self) -> str:
        return self.sent

    def _visible(self, text: str) -> str:
        """The reply without the template's prefix (nothing while the text is still part of it)."""
        if not self._prefix:
            return text
        if text.startswith(self._prefix):
            return text[len(self._prefix):]
        return "" if self._prefix.startswith(text) else text

    def _text_so_far(self) -> str:
        """`decode(self.ids)`, from the window since the last settled point."""
        window = self._decode(self.ids[self._context:])
        if not window.startswith(self._context_text):  # the tokenizer rewrote its context: decode it all
            text = self._decode(self.ids)
            if not text.endswith(REPLACEMENT):
                self._settle(text, max(0, len(self.ids) - 1))
            return text
        tail = window[len(self._context_text):]
        text = self._settled + tail
        if not tail.endswith(REPLACEMENT):  # a whole character: settle here, the tail becomes context
            self._settle(text, self._read)
        return text

    def _settle(self, text: str, start: int) -> None:
        """`text` is decode(ids); the next tail gets ids[start:] as context, reaching further back over
        tokens that decode to nothing (special tokens), so that it is never decoded as the start of a
        text (where some tokenizers drop a word's leading space)."""
        self._settled, self._read = text, len(self.ids)
        step = 1
        while True:
            context_text = self._decode(self.ids[start:self._read])
            if context_text or start == 0:
                break
            start, step = max(0, start - step), step * 2
        self._context, self._context_text = start, context_text

    def _advance(self, ready: str) -> str:
        # Decoding a longer sequence never rewrites what was already sent for BPE tokenizers; if a
        # tokenizer did (a normaliser that looks ahead), send only what extends the sent prefix.
        if not ready.startswith(self.sent):
            return ""
        new = ready[len(self.sent):]
        self.sent = ready
        return new

    def _first_stop(self, text: str) -> int | None:
        # Search only where a stop string could newly end: the unsent tail plus one stop's length.
        start = max(0, len(self.sent) - max((len(s) for s in self._stops), default=0))
        found = [i for i in (text.find(stop, start) for stop in self._stops) if i >= 0]
        return min(found) if found else None

    def _held_back(self, text: str) -> int:
        held = 0
        while held < len(text) and text[len(text) - 1 - held] == REPLACEMENT:
            held += 1
        body = text[: len(text) - held]
        for stop in self._stops:
            # The longest tail of the text that is a proper prefix of this stop string.
            for length in range(min(len(stop) - 1, len(body)), 0, -1):
                if body.endswith(stop[:length]):
                    held = max(held, len(text) - len(body) + length)
                    break
        return held
