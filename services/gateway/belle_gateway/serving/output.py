"""From generated token ids to the text a client sees: incremental decoding, stop strings, finish reasons.

One `ReplyText` per choice. After each new token the engine calls `add(ids)`; it returns the text that
may be sent now. Two kinds of text are held back until the next token settles them: a tail that is
still an incomplete UTF-8 character (byte-level tokenizers decode it as U+FFFD), and a tail that could
be the start of a stop string. A stop string ends the reply; it and everything after it are never
sent. Standard library only: the decoder is passed in.
"""

from __future__ import annotations

from typing import Callable, Sequence

REPLACEMENT = "\ufffd"


class ReplyText:
    def __init__(self, decode: Callable[[Sequence[int]], str], stops: Sequence[str] = ()):
        self._decode = decode
        self._stops = [s for s in stops if s]
        self.ids: list[int] = []
        self.sent = ""  # the text the client has (a prefix of the reply)
        self.stopped = False  # a stop string was seen

    def add(self, token_id: int) -> str:
        """Take one generated token; return the new text that may be sent (often '')."""
        self.ids.append(token_id)
        text = self._decode(self.ids)
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
        return self._advance(self._decode(self.ids))

    @property
    def text(self) -> str:
        return self.sent

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
