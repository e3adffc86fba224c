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
* **dtmf**: a participant entered DTMF tones; once per participant and call (a card number
  is many tones, one alert).
* **phrase_window**: the phrase was said (``expect=said``) or was not said
  (``expect=missing``) by the role in the first (``window=first``) or last N seconds of the
  call; once per call. "Said in the first N s" fires on the final; "not said in the first N
  s" once the call is N s long plus ``WINDOW_GRACE_MS`` (a final said just before the end of
  the window may still be on its way), or when the call ends sooner; the last-N-seconds
  rules when the call ends. The caller checks these against the stored finals, so a stream
  that reconnected decides them the same way.
* **talk_ratio**: the role's share of all talk (agents' by default) is below ``percent`` or
  above ``percent_max``, once the call is N seconds long; once per call and direction.
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
    percent_max: int | None = None
    window: str = ""
    expect: str = "said"

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
            percent_max=rule.percent_max,
            window=rule.window,
            expect=rule.expect,
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


def dtmf_firings(
    rules: Iterable[Rule], *, key: str | None, label: str, role: str, at_ms: int
) -> list[Firing]:
    """The DTMF rules a stored tone fires: once per participant and call."""
    return [
        Firing(
            rule=rule,
            message=f"{rule.name}: {label} entered DTMF tones",
            at_ms=at_ms,
            episode=f"r{rule.id}|{key or ''}|dtmf",
            speaker=key,
        )
        for rule in rules
        if rule.kind == "dtmf" and rule.applies_to(role)
    ]


# A final said just before the end of a first-N-seconds window arrives a moment later: a
# "not said" rule waits this much longer before deciding.
WINDOW_GRACE_MS = 2000


@dataclass(frozen=True, slots=True)
class SaidFinal:
    """A stored final as the phrase-window rules see it."""

    text: str
    key: str | None
    label: str
    role: str
    start_ms: int


def window_deadline_ms(rule: Rule) -> int | None:
    """When a first-N-seconds "not said" rule can be decided on a live call (else None)."""
    if rule.kind != "phrase_window" or rule.window != "first" or rule.expect != "missing":
        return None
    return (rule.seconds or 0) * 1000 + WINDOW_GRACE_MS


def window_firings(
    rules: Iterable[Rule],
    finals: Iterable[SaidFinal],
    *,
    duration_ms: int | None,
    closing: bool,
) -> list[Firing]:
    """The phrase-window rules decided by ``finals`` (all the call's, or one new one).

    ``duration_ms`` is how long the call is (has been), ``closing`` that it has ended: the
    last-N-seconds rules are decided only then.
    """
    finals = list(finals)
    fired: list[Firing] = []
    for rule in rules:
        if rule.kind != "phrase_window" or not rule.seconds:
            continue
        width = rule.seconds * 1000
        matching = [
            f for f in finals if rule.applies_to(f.role) and contains_phrase(f.text, rule.phrase)
        ]
        who = f" by the {rule.speaker_role}" if rule.speaker_role else ""
        window = rule.window
        if window == "first":
            inside = [f for f in matching if f.start_ms < width]
            said = min(inside, key=lambda f: f.start_ms) if inside else None
            # Missing is decided once the window has passed (or the call ended inside it).
            decided = duration_ms is not None and (
                closing or duration_ms >= width + WINDOW_GRACE_MS
            )
            missing_at = min(width, duration_ms or 0)
        elif window == "last" and closing and duration_ms is not None:
            inside = [f for f in matching if f.start_ms >= duration_ms - width]
            said = max(inside, key=lambda f: f.start_ms) if inside else None
            decided, missing_at = True, duration_ms
        else:
            continue
        episode = f"r{rule.id}|{window}"
        if rule.expect == "said" and said is not None:
            message = f"“{rule.phrase}” said by {said.label} in the {window} {rule.seconds} s"
            fired.append(
                Firing(
                    rule=rule,
                    message=f"{rule.name}: {message}",
                    at_ms=said.start_ms,
                    episode=episode,
                    speaker=said.key,
                )
            )
        elif rule.expect == "missing" and not inside and decided:
            message = f"“{rule.phrase}” not said{who} in the {window} {rule.seconds} s"
            fired.append(
                Firing(
                    rule=rule, message=f"{rule.name}: {message}", at_ms=missing_at, episode=episode
                )
            )
    return fired


def talk_ratio_firing(rule: Rule, figures: CallFigures, roles: Mapping[str, str]) -> Firing | None:
    """A talk-ratio rule's firing, if the role's share of all talk is out of its range."""
    if not rule.seconds or figures.duration < rule.seconds * FRAMES_PER_SECOND:
        return None
    total = sum(s.talk for s in figures.speakers)
    if total <= 0:
        return None
    role = rule.speaker_role or "agent"
    share = sum(s.talk for s in figures.speakers if roles.get(s.key, "") == role) / total * 100
    if rule.percent is not None and share < rule.percent:
        side, bound = "below", rule.percent
    elif rule.percent_max is not None and share > rule.percent_max:
        side, bound = "above", rule.percent_max
    else:
        return None
    return Firing(
        rule=rule,
        message=f"{rule.name}: the {role}s' talk ratio is {round(share)} %, {side} {bound} %",
        at_ms=ms(figures.duration),
        episode=f"r{rule.id}|ratio-{side}",
    )


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
            if rule.kind in ("keyword", "sentiment", "dtmf", "phrase_window") or not rule.seconds:
                continue
            if rule.kind == "talk_ratio":
                ratio = talk_ratio_firing(rule, figures, roles)
                if ratio is not None:
                    found.append(ratio)
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
