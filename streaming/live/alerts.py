"""Alert rules checked against a live call: pure decisions, stored by the caller.

Each firing carries an *episode* key that names what it is about (this stretch of silence,
this monologue, this utterance), so the same episode seen again (the next tick, or a stream
that reconnected and rebuilt its figures) is stored once.

* **keyword**: a final utterance contains the phrase, whole words, case-insensitive,
  punctuation and spacing ignored.
* **dead air**: nobody has talked for longer than N seconds; once per silence.
* **monologue**: one speaker has held the floor for longer than N seconds; once per monologue.
* **overtalk**: two or more talked for at least P % of the last N seconds; once each time the
  share rises past P (it must drop below P before it fires again). It waits until the call is
  N seconds long, so one early overlap is not "100 % of the window".
* **sentiment**: a speaker's finals were negative N times in a row (``finals``), or for N
  seconds (``seconds``: from the start of the first to the end of the latest); once per run
  of negative finals, which a final that is not negative ends.
* **hold**: a participant has been on hold for longer than N seconds; once per hold.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from streaming.live.analytics import CallFigures, ms, overtalk_fraction
from streaming.units import FRAMES_PER_SECOND


@dataclass(frozen=True, slots=True)
class Rule:
    id: int
    name: str
    kind: str
    phrase: str = ""
    seconds: int | None = None
    percent: int | None = None
    speaker_role: str = ""
    finals: int | None = None

    @classmethod
    def from_model(cls, rule: Any) -> Rule:
        return cls(
            id=rule.pk,
            name=rule.name,
            kind=rule.kind,
            phrase=rule.phrase,
            seconds=rule.seconds,
            percent=rule.percent,
            speaker_role=rule.speaker_role,
            finals=rule.finals,
        )

    def applies_to(self, role: str) -> bool:
        return not self.speaker_role or self.speaker_role == role


@dataclass(frozen=True, slots=True)
class Firing:
    rule: Rule
    message: str
    at_ms: int
    episode: str
    speaker: str | None = None  # the speaker key it is about, if any


_WORD = re.compile(r"\w+", re.UNICODE)


def words_of(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


def contains_phrase(text: str, phrase: str) -> bool:
    """Whole-word, case-insensitive match that ignores punctuation and spacing."""
    wanted = words_of(phrase)
    if not wanted:
        return False
    said = words_of(text)
    n = len(wanted)
    return any(said[i : i + n] == wanted for i in range(len(said) - n + 1))


def keyword_firings(
    rules: Iterable[Rule],
    *,
    text: str,
    speaker: str | None,
    speaker_label: str,
    role: str,
    at_ms: int,
    utterance: str,
) -> list[Firing]:
    """The keyword rules a final utterance fires; ``utterance`` identifies it."""
    fired = []
    for rule in rules:
        if rule.kind != "keyword" or not rule.applies_to(role):
            continue
        if contains_phrase(text, rule.phrase):
            fired.append(
                Firing(
                    rule=rule,
                    message=f"{rule.name}: “{rule.phrase}” said by {speaker_label}",
                    at_ms=at_ms,
                    episode=f"r{rule.id}|said|{utterance}",
                    speaker=speaker,
                )
            )
    return fired


def hold_firing(
    rule: Rule, *, key: str, label: str, start: datetime, held_ms: int, start_ms: int
) -> Firing | None:
    """A hold rule firing for a hold that began at ``start`` and has lasted ``held_ms``.

    The episode is the hold's start, so the live check (while on hold) and the check when the
    hold ends store one alert between them.
    """
    if not rule.seconds or held_ms <= rule.seconds * 1000:
        return None
    return Firing(
        rule=rule,
        message=f"{rule.name}: {label} has been on hold for more than {rule.seconds} s",
        at_ms=start_ms + rule.seconds * 1000,
        episode=f"r{rule.id}|{key}|hold@{start.isoformat()}",
        speaker=key,
    )


@dataclass
class NegativeRun:
    """A speaker's negative finals in a row so far."""

    count: int
    start_ms: int
    first: str  # the first final's id: the episode


@dataclass
class SentimentWatch:
    """Sentiment rules on one live call: each speaker's current run of negative finals."""

    runs: dict[str, NegativeRun] = field(default_factory=dict)

    def final(
        self,
        rules: Iterable[Rule],
        *,
        key: str,
        label: str,
        role: str,
        sentiment: str | None,
        start_ms: int,
        end_ms: int,
        utterance: str,
    ) -> list[Firing]:
        """A stored final of ``key``: the sentiment rules it fires (each once per run)."""
        if sentiment is None:
            return []  # no judgement: neither extends nor ends a run
        if sentiment != "negative":
            self.runs.pop(key, None)
            return []
        run = self.runs.get(key)
        if run is None:
            run = self.runs[key] = NegativeRun(0, start_ms, utterance)
        run.count += 1
        fired = []
        for rule in rules:
            if rule.kind != "sentiment" or not rule.applies_to(role):
                continue
            by_count = rule.finals is not None and run.count >= rule.finals
            by_time = rule.seconds is not None and end_ms - run.start_ms >= rule.seconds * 1000
            if not (by_count or by_time):
                continue
            how = f"{run.count} finals" if by_count else f"{rule.seconds} s"
            fired.append(
                Firing(
                    rule=rule,
                    message=f"{rule.name}: {label} has been negative for {how}",
                    at_ms=end_ms,
                    episode=f"r{rule.id}|{key}|negative@{run.first}",
                    speaker=key,
                )
            )
        return fired


@dataclass
class AlertWatch:
    """Time-based rules on one live call; remembers which episodes it has fired."""

    fired: set[str] = field(default_factory=set)
    overtalk_high: set[int] = field(default_factory=set)  # rules above their threshold

    def check(
        self,
        rules: Iterable[Rule],
        figures: CallFigures,
        labels: Mapping[str, str],
        roles: Mapping[str, str],
        holds: Mapping[str, tuple[datetime, int, int]] | None = None,
    ) -> list[Firing]:
        """``holds``: who is on hold now, ``key -> (since, held ms, start ms on the timeline)``."""
        found: list[Firing] = []
        now = figures.duration
        for rule in rules:
            if rule.kind in ("keyword", "sentiment") or not rule.seconds:
                continue
            if rule.kind == "hold":
                for key, (since, held_ms, start_ms) in (holds or {}).items():
                    if not rule.applies_to(roles.get(key, "")):
                        continue
                    firing = hold_firing(
                        rule,
                        key=key,
                        label=labels.get(key, key),
                        start=since,
                        held_ms=held_ms,
                        start_ms=start_ms,
                    )
                    if firing is not None:
                        found.append(firing)
                continue
            limit = rule.seconds * FRAMES_PER_SECOND
            if rule.kind == "dead_air":
                if figures.current_silence > limit:
                    start = now - figures.current_silence
                    found.append(
                        Firing(
                            rule=rule,
                            message=f"{rule.name}: nobody has talked for {rule.seconds} s",
                            at_ms=ms(start + limit),
                            episode=f"r{rule.id}|silence@{start}",
                        )
                    )
            elif rule.kind == "monologue":
                for s in figures.speakers:
                    if s.current_monologue > limit and rule.applies_to(roles.get(s.key, "")):
                        found.append(
                            Firing(
                                rule=rule,
                                message=(
                                    f"{rule.name}: {labels.get(s.key, s.key)} has talked "
                                    f"for {rule.seconds} s without a break"
                                ),
                                at_ms=ms(s.current_monologue_start + limit),
                                episode=f"r{rule.id}|{s.key}|monologue@{s.current_monologue_start}",
                                speaker=s.key,
                            )
                        )
            elif rule.kind == "overtalk" and rule.percent:
                if now < limit:
                    continue
                share = overtalk_fraction(figures.overlap_segments, now - limit, now)
                if share * 100 < rule.percent:
                    self.overtalk_high.discard(rule.id)
                    continue
                if rule.id in self.overtalk_high:
                    continue
                self.overtalk_high.add(rule.id)
                first = next(
                    (a for a, b in figures.overlap_segments if b > now - limit), now - limit
                )
                found.append(
                    Firing(
                        rule=rule,
                        message=(
                            f"{rule.name}: {round(share * 100)} % of the last "
                            f"{rule.seconds} s had two or more talking"
                        ),
                        at_ms=ms(now),
                        episode=f"r{rule.id}|overtalk@{first}",
                    )
                )
        fresh = [f for f in found if f.episode not in self.fired]
        self.fired.update(f.episode for f in fresh)
        return fresh
