"""What redaction costs a result: CPU time per final and per interim, on the event loop.

**Question:** how long does ``streaming.redaction.redact`` hold the event loop for one
result? It runs inline in ``AcsStream.phrase``, once per final and interim, before anything
is stored or sent. **Target:** well under a millisecond for an ordinary result and a few
milliseconds at most for one full of numbers, so that interims at a few per second per
speaker cost less than 1% of a core per call.

Each case is run ``--rounds`` times with the rules in force by default (every kind, the
default national id validators); the figure is the median time per call.

* ``ordinary-final``: a 20-word final with its words, nothing to mask.
* ``ordinary-interim``: a 12-word interim without words, nothing to mask.
* ``card-final``: a 33-word final with words: a spoken card number and a spoken address.
* ``digits-final``: a 40-word final of numbers that are none of the kinds (dates, amounts,
  times, a Luhn-invalid card).

    .venv/bin/python -m bench.redaction --rounds 2000
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

from streaming.acs.packets import Word
from streaming.redaction import Rules, redact

CASES: dict[str, tuple[str, bool, bool]] = {  # text, with words, interim
    "ordinary-final": (
        "thank you for calling today I can certainly help you with the question about "
        "your account and the monthly plan",
        True,
        False,
    ),
    "ordinary-interim": ("yes I can help you with that let me look at your", False, True),
    "card-final": (
        "thank you for calling, my card is four five three two zero one five one one two "
        "eight three zero three six six and my email is john dot smith at example dot com",
        True,
        False,
    ),
    "digits-final": (
        "on 2024 12 31 I paid $1,250.00 at 10:30 and again 19.99 on the 3rd, the number "
        "4532 0151 1283 0367 was refused, order 12345 and room 1205 on floor 12, 7 items "
        "of 3 kinds for 49.99 each",
        True,
        False,
    ),
}


def _words(text: str) -> list[Word]:
    return [Word(w, i * 1_000_000, 900_000, 0.9) for i, w in enumerate(text.split())]


def measure(rounds: int) -> dict[str, float]:
    rules = Rules()
    found: dict[str, float] = {}
    for name, (text, with_words, interim) in CASES.items():
        words: Sequence[Word] = _words(text) if with_words else []
        redact(text, words, rules, interim=interim)  # warm the caches
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            redact(text, words, rules, interim=interim)
            times.append(time.perf_counter() - start)
        found[name] = statistics.median(times) * 1000
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    for name, ms in measure(args.rounds).items():
        print(f"{name:18} {ms:7.3f} ms per result (median of {args.rounds})")


if __name__ == "__main__":
    main()
