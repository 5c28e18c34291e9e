"""Run the offline teacher and judge (an OpenAI-compatible server).

    python -m belle_teacher --port 8100                  # or: belle-teacher ... / belle teacher ...
    python -m belle_teacher --port 0 --seed 1            # any free port; prints the URL it listens on
    python -m belle_teacher --latency 0.5 --error-rate 0.2 --api-key sk-test
    python -m belle_teacher --holdout eval.jsonl         # never generates a question of that eval set
    python -m belle_teacher --position-bias first        # a pairwise judge that always prefers answer A

Then point any OpenAI client at it:

    OpenAI(base_url="http://127.0.0.1:8100/v1", api_key="sk-test").chat.completions.create(
        model="belle-teacher", messages=[{"role": "user", "content": "把305写成中文数字"}])

Once it accepts connections it prints `belle teacher listening on http://HOST:PORT/v1` (flushed).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from belle_teacher.options import TeacherOptions
from belle_teacher.replies import POSITION_BIASES


def parse_args(argv: Sequence[str] | None = None) -> TeacherOptions:
    defaults = TeacherOptions()
    parser = argparse.ArgumentParser(prog="belle-teacher", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=defaults.host)
    parser.add_argument("--port", type=int, default=defaults.port, help="0 picks a free port (default %(default)s)")
    parser.add_argument("--model", default=defaults.model, help="model name served (default %(default)s)")
    parser.add_argument("--api-key", default=None, help="require `Authorization: Bearer KEY`")
    parser.add_argument("--latency", type=float, default=defaults.latency, help="seconds of delay per request")
    parser.add_argument("--jitter", type=float, default=defaults.jitter, help="extra random delay up to this many seconds")
    parser.add_argument("--error-rate", type=float, default=defaults.error_rate,
                        help="share of requests failing with 429 / 503, alternating")
    parser.add_argument("--noise", type=float, default=defaults.noise,
                        help="share of self-instruct blocks made deliberately bad (default %(default)s)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random choices")
    parser.add_argument("--holdout", type=Path, default=None,
                        help="eval-set JSONL whose questions are never generated (python -m belle_teacher.evalset)")
    parser.add_argument("--position-bias", choices=POSITION_BIASES, default=defaults.position_bias,
                        help="pairwise judging: 'first' always prefers answer A, a deliberately biased judge "
                             "for testing order swapping (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        return TeacherOptions(**vars(args))
    except ValueError as exc:
        parser.error(str(exc))


def main(argv: Sequence[str] | None = None) -> None:
    from belle_teacher.server import serve

    options = parse_args(argv)
    try:
        serve(options)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
