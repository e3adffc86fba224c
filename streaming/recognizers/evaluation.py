"""Word error rate, for judging recognizers against a reference transcript."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[a-z0-9']+")


def normalize(text: str) -> list[str]:
    """Lower-case words without punctuation: what recognizers without formatting emit."""
    return _TOKEN.findall(text.lower())


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Substitutions + deletions + insertions turning ``reference`` into ``hypothesis``."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp))
            )
        previous = current
    return previous[-1]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word errors divided by the reference's word count (0.0 for two empty texts)."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 0.0 if not hyp else float(len(hyp))
    return word_errors(ref, hyp) / len(ref)
