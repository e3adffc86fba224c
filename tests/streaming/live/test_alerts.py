"""Alert rules: what fires, once per episode."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from streaming.live.alerts import (
    WINDOW_GRACE_MS,
    AlertWatch,
    Firing,
    Rule,
    SaidFinal,
    contains_phrase,
    dtmf_firings,
    keyword_firings,
    window_firings,
)
from streaming.live.analytics import CallFigures, analyse, track_from_intervals
from streaming.models import AlertRule
from streaming.units import FRAMES_PER_SECOND

F = FRAMES_PER_SECOND
DEAD_AIR = Rule(id=1, name="Dead air", kind="dead_air", seconds=5)
MONOLOGUE = Rule(id=2, name="Monologue", kind="monologue", seconds=10, speaker_role="agent")
OVERTALK = Rule(id=3, name="Overtalk", kind="overtalk", seconds=10, percent=30)


def figures(duration_s: float, **spans: list[tuple[float, float]]) -> CallFigures:
    length = round(duration_s * F)
    tracks = {
        key: track_from_intervals([(round(a * F), round(b * F)) for a, b in s], length)
        for key, s in spans.items()
    }
    return analyse(tracks, length)


@pytest.mark.parametrize(
    ("text", "phrase", "found"),
    [
        ("I want to cancel my account.", "cancel my account", True),
        ("CANCEL   my\naccount!", "cancel my account", True),
        ("cancel, my account", "cancel my account", True),
        ("I'll cancel my accountant", "cancel my account", False),
        ("cancellation of my account", "cancel my account", False),
        ("Ich möchte kündigen", "KÜNDIGEN", True),
        ("anything", "  ", False),
    ],
)
def test_phrases_match_whole_words(text: str, phrase: str, found: bool) -> None:
    assert contains_phrase(text, phrase) is found


def test_keyword_rules_respect_the_speaker_role() -> None:
    agents_only = Rule(
        id=9, name="Promise", kind="keyword", phrase="guarantee", speaker_role="agent"
    )

    def fire(role: str) -> list[Firing]:
        return keyword_firings(
            [agents_only],
            text="I guarantee it",
            speaker="x",
            speaker_label="Dana",
            role=role,
            at_ms=1000,
            utterance="1",
        )

    assert fire("customer") == []
    [fired] = fire("agent")
    assert fired.episode == "r9|said|1"
    assert "Dana" in fired.message


def test_dead_air_fires_once_per_silence() -> None:
    watch = AlertWatch()
    assert watch.check([DEAD_AIR], figures(6, a=[(0, 2)]), {}, {}) == []  # 4 s quiet
    [first] = watch.check([DEAD_AIR], figures(8, a=[(0, 2)]), {}, {})
    assert first.at_ms == 7000
    assert watch.check([DEAD_AIR], figures(12, a=[(0, 2)]), {}, {}) == []  # same silence
    [second] = watch.check([DEAD_AIR], figures(20, a=[(0, 2), (12, 13)]), {}, {})
    assert second.at_ms == 18_000
    assert second.episode != first.episode


def test_a_fresh_watch_names_the_same_episode_the_same_way() -> None:
    """A reconnected stream rebuilds its watch; the store dedupes by episode."""
    f = figures(8, a=[(0, 2)])
    assert AlertWatch().check([DEAD_AIR], f, {}, {})[0].episode == (
        AlertWatch().check([DEAD_AIR], f, {}, {})[0].episode
    )


def test_monologue_fires_for_the_role_it_watches() -> None:
    watch = AlertWatch()
    roles = {"agent": "agent", "customer": "customer"}
    labels = {"agent": "Dana"}
    assert watch.check([MONOLOGUE], figures(12, customer=[(0, 12)]), labels, roles) == []
    [fired] = watch.check([MONOLOGUE], figures(12, agent=[(0, 12)]), labels, roles)
    assert (fired.speaker, fired.at_ms) == ("agent", 10_000)
    assert "Dana" in fired.message
    assert watch.check([MONOLOGUE], figures(14, agent=[(0, 14)]), labels, roles) == []


def test_overtalk_fires_when_rising_past_the_threshold_and_rearms() -> None:
    watch = AlertWatch()
    # Not before the window is full.
    assert watch.check([OVERTALK], figures(5, a=[(0, 5)], b=[(0, 5)]), {}, {}) == []
    [fired] = watch.check([OVERTALK], figures(10, a=[(0, 10)], b=[(6, 10)]), {}, {})
    assert "40 %" in fired.message
    # Still above: no repeat.
    assert watch.check([OVERTALK], figures(11, a=[(0, 11)], b=[(6, 11)]), {}, {}) == []
    # Below, then above again: a new alert.
    calm = figures(25, a=[(0, 25)], b=[(6, 11)])
    assert watch.check([OVERTALK], calm, {}, {}) == []
    again = figures(30, a=[(0, 30)], b=[(6, 11), (25, 30)])
    assert len(watch.check([OVERTALK], again, {}, {})) == 1


@pytest.mark.parametrize(
    ("fields", "error_field"),
    [
        ({"kind": "keyword", "phrase": " "}, "phrase"),
        ({"kind": "dead_air"}, "seconds"),
        ({"kind": "overtalk", "seconds": 30}, "percent"),
        ({"kind": "overtalk", "seconds": 30, "percent": 150}, "percent"),
    ],
)
def test_rules_missing_their_threshold_are_refused(fields: dict, error_field: str) -> None:
    with pytest.raises(ValidationError) as error:
        AlertRule(name="x", **fields).full_clean()
    assert error_field in error.value.message_dict


@pytest.mark.django_db
def test_the_default_rules_exist_after_migrating() -> None:
    kinds = set(AlertRule.objects.values_list("kind", flat=True))
    assert {"dead_air", "monologue", "overtalk", "keyword"} <= kinds


def test_negative_finals_in_a_row_fire_once_per_run() -> None:
    from streaming.live.alerts import SentimentWatch

    by_count = Rule(id=1, name="Negative x3", kind="sentiment", finals=3, speaker_role="customer")
    by_time = Rule(id=2, name="Negative 14 s", kind="sentiment", seconds=14)
    watch = SentimentWatch()

    def final(n: int, felt: str | None, key: str = "c", role: str = "customer") -> list[Firing]:
        return watch.final(
            [by_count, by_time],
            key=key,
            label=key,
            role=role,
            sentiment=felt,
            start_ms=n * 4000,
            end_ms=n * 4000 + 3000,
            utterance=str(n),
        )

    assert final(0, "negative") == []
    assert final(1, None) == []  # no judgement: the run goes on
    assert final(2, "negative") == []
    fired = final(3, "negative")
    assert [(f.rule.id, f.episode) for f in fired] == [
        (1, "r1|c|negative@0"),
        (2, "r2|c|negative@0"),
    ]
    assert final(4, "neutral") == []  # the run ends
    assert final(5, "negative", key="a", role="agent") == []
    assert [f.rule.id for f in final(6, "negative", key="a", role="agent")] == []
    assert [f.rule.id for f in final(8, "negative", key="a", role="agent")] == [2]


def test_a_hold_fires_once_past_its_limit() -> None:
    from datetime import UTC, datetime

    from streaming.live.alerts import hold_firing

    rule = Rule(id=7, name="Hold", kind="hold", seconds=60)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    assert hold_firing(rule, key="c", label="C", start=start, held_ms=60_000, start_ms=0) is None
    firing = hold_firing(rule, key="c", label="C", start=start, held_ms=60_001, start_ms=5_000)
    assert firing is not None
    assert (firing.at_ms, firing.episode) == (65_000, f"r7|c|hold@{start.isoformat()}")
    watch = AlertWatch()
    figures = analyse({}, 100 * FRAMES_PER_SECOND)
    holds = {"c": (start, 70_000, 5_000)}
    assert [f.episode for f in watch.check([rule], figures, {}, {}, holds)] == [firing.episode]
    assert watch.check([rule], figures, {}, {}, holds) == []  # the same hold: once


# --- DTMF, phrase windows, talk ratio --------------------------------------------------------


def _said(text: str, start_s: float, role: str = "agent") -> SaidFinal:
    return SaidFinal(text, f"key-{role}", role.title(), role, round(start_s * 1000))


FIRST_SAID = Rule(
    id=20,
    name="Greet",
    kind="phrase_window",
    phrase="welcome",
    seconds=10,
    window="first",
    expect="said",
    speaker_role="agent",
)
FIRST_MISSING = Rule(
    id=21,
    name="Name",
    kind="phrase_window",
    phrase="my name is",
    seconds=10,
    window="first",
    expect="missing",
    speaker_role="agent",
)
LAST_SAID = Rule(
    id=22,
    name="Bye",
    kind="phrase_window",
    phrase="goodbye",
    seconds=10,
    window="last",
    expect="said",
)
LAST_MISSING = Rule(
    id=23,
    name="Else",
    kind="phrase_window",
    phrase="anything else",
    seconds=10,
    window="last",
    expect="missing",
)


def test_phrase_window_rules_decide_on_their_window_and_role() -> None:
    finals = [
        _said("Welcome!", 3),
        _said("welcome", 12),
        _said("My name is Dana", 11),
        _said("Goodbye", 55, "customer"),
    ]
    live = window_firings(
        [FIRST_SAID, FIRST_MISSING, LAST_SAID, LAST_MISSING],
        finals,
        duration_ms=11_000,
        closing=False,
    )
    assert [(f.rule.id, f.at_ms, f.episode) for f in live] == [(20, 3000, "r20|first")]
    waited = window_firings([FIRST_MISSING], finals, duration_ms=12_000, closing=False)
    assert [(f.rule.id, f.at_ms) for f in waited] == [(21, 10_000)]  # said at 11 s: too late
    ended = window_firings(
        [FIRST_SAID, FIRST_MISSING, LAST_SAID, LAST_MISSING],
        finals,
        duration_ms=60_000,
        closing=True,
    )
    assert sorted((f.rule.id, f.episode) for f in ended) == [
        (20, "r20|first"),
        (21, "r21|first"),
        (22, "r22|last"),
        (23, "r23|last"),
    ]
    customer_greets = window_firings(
        [FIRST_SAID], [_said("welcome", 1, "customer")], duration_ms=None, closing=False
    )
    assert customer_greets == []


def test_a_first_window_rule_waits_for_late_finals_unless_the_call_ends() -> None:
    assert (
        window_firings([FIRST_MISSING], [], duration_ms=10_000 + WINDOW_GRACE_MS - 1, closing=False)
        == []
    )
    [short] = window_firings([FIRST_MISSING], [], duration_ms=4_000, closing=True)
    assert short.at_ms == 4_000


def test_dtmf_rules_fire_once_per_participant() -> None:
    rule = Rule(id=30, name="Card", kind="dtmf", speaker_role="customer")
    assert dtmf_firings([rule], key="4:+1", label="+1", role="agent", at_ms=0) == []
    [fired] = dtmf_firings([rule], key="4:+1", label="+1", role="customer", at_ms=5000)
    assert (fired.episode, fired.at_ms, fired.speaker) == ("r30|4:+1|dtmf", 5000, "4:+1")


def test_talk_ratio_rules_fire_outside_their_range_once_per_direction() -> None:
    rule = Rule(id=40, name="Balance", kind="talk_ratio", seconds=10, percent=30, percent_max=70)
    roles = {"a": "agent", "c": "customer"}
    watch = AlertWatch()
    early = figures(5, a=[(0, 5)])
    assert watch.check([rule], early, {}, roles) == []  # not judged before 10 s
    talky = figures(20, a=[(0, 18)], c=[(18, 20)])
    [high] = watch.check([rule], talky, {}, roles)
    assert high.episode == "r40|ratio-above"
    assert "90 %, above 70 %" in high.message
    assert watch.check([rule], talky, {}, roles) == []
    quiet = figures(30, a=[(0, 2)], c=[(2, 30)])
    [low] = watch.check([rule], quiet, {}, roles)
    assert low.episode == "r40|ratio-below"
    balanced = figures(20, a=[(0, 10)], c=[(10, 20)])
    assert AlertWatch().check([rule], balanced, {}, roles) == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "phrase_window", "phrase": "", "window": "first", "seconds": 5}, "phrase"),
        ({"kind": "phrase_window", "phrase": "hi", "window": "", "seconds": 5}, "window"),
        ({"kind": "phrase_window", "phrase": "hi", "window": "last"}, "seconds"),
        ({"kind": "talk_ratio", "seconds": 30}, "percent"),
        ({"kind": "talk_ratio", "seconds": 30, "percent": 80, "percent_max": 40}, "percent_max"),
        ({"kind": "talk_ratio", "percent": 10}, "seconds"),
    ],
)
def test_new_rule_kinds_are_validated(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        AlertRule(name="r", **fields).clean()
    assert field in refused.value.message_dict


def test_a_dtmf_rule_needs_nothing_more() -> None:
    AlertRule(name="Card", kind="dtmf").clean()
