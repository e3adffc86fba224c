"""A call history to measure on: generated calls stored with ``bulk_create``, and viewers.

``generate`` fills the database with N calls over the last 90 days, oldest first, each with
2-3 participants (a fifth with an IVR bot, a tenth with a second agent), a few finals with
word timings and confidences, analytics, and alerts on about a quarter; the newest are still
running or ringing. Their text comes from per-topic phrases with names (many non-ASCII),
products, places and amounts: only billing calls say "charged twice" and only delivery calls
"tracking number", so a search finds some calls and not others. ``long_call`` adds one
2-hour call of many finals with non-ASCII names, commas, quotes and ``&``. ``make_viewers``
adds Staff, who see every call, and the supervisor of one of ten teams, each with an API
token and a logged-in session. Django must be set up (``bench.harness.db.configure_django``).
"""

from __future__ import annotations

import argparse
import math
import random
import re
import secrets
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from streaming.units import TICKS_PER_MS, TICKS_PER_SECOND

if TYPE_CHECKING:
    from django.contrib.auth.models import User

TEAMS = 10  # the supervisor's team is one of them: about a tenth of the calls
AGENTS_PER_TEAM = 10
HISTORY_DAYS = 90
LONG_CALL_SECONDS = 2 * 3600
CHUNK = 500  # calls per transaction while generating
COMPANY = "Contoso"

# --- what people say ---------------------------------------------------------------------------

NAMES = (
    *("Emma Johnson", "Liam Smith", "Olivia Brown", "Noah Williams", "Ava Jones"),
    *("Lucas Miller", "Mia Davis", "Ethan Wilson", "Sophia Taylor", "Mason Anderson"),
    *("Isabella Thomas", "Logan Moore", "Amelia Martin", "James Lee", "Harper White"),
    *("Priya Patel", "Arjun Sharma", "Wei Zhang", "Mei Chen", "Hiroshi Tanaka", "Yuki Sato"),
    *("Fatima Khan", "Omar Haddad", "Kwame Mensah", "Chiamaka Okafor", "José García"),
    *("María Fernández", "Zoë Müller", "François Lefèvre", "Søren Østergaard"),
    *("Łukasz Wójcik", "Ayşe Kaya", "Nguyễn Văn An", "Chloé Dubois", "Björn Ångström"),
    *("Ana Conceição", "Siobhán O'Neill", "Jürgen Groß", "Renée Côté", "Jiří Dvořák"),
    *("Iñaki Etxeberria", "Ольга Иванова", "李娜", "Ελένη Παπαδοπούλου", "Dağhan Öztürk"),
)
FIRST_NAMES = tuple(name.split()[0] for name in NAMES if " " in name)
PRODUCTS = (
    *("wireless router", "fibre broadband plan", "smart thermostat", "espresso machine"),
    *("noise-cancelling headphones", "standing desk", "e-reader", "dishwasher"),
    *("washing machine", "4K television", "gaming laptop", "fitness tracker", "air purifier"),
    *("robot vacuum", "mattress topper", "office chair", "security camera", "mesh Wi-Fi kit"),
    *("prepaid SIM", "family mobile plan", "streaming subscription", "winter tyres"),
    *("travel insurance policy", "home insurance policy", "premium credit card", "gift card"),
    *("electric kettle", "bike helmet", "baby monitor", "crème brûlée torch", "café table"),
)
CITIES = (
    *("Seattle", "Boston", "Austin", "Denver", "Chicago", "Toronto", "Montréal", "Zürich"),
    *("München", "Köln", "Malmö", "Kraków", "São Paulo", "Bogotá", "Reykjavík", "Düsseldorf"),
    *("Lyon", "Sevilla", "Dublin", "Leeds", "Göteborg", "Łódź", "Besançon", "Curitiba"),
)
STREETS = (
    *("Maple Street", "Oak Avenue", "Königstraße", "Rue de la Paix", "Calle Mayor"),
    *("High Street", "Elm Court", "Åsgatan", "Via Roma", "Rua Augusta", "Birch Lane"),
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    *("January", "February", "March", "April", "May", "June", "July", "August"),
    *("September", "October", "November", "December"),
)
PARTS_OF_DAY = ("morning", "afternoon", "evening")

# Per topic: what the customer says, then what the agent says. Only billing says "charged
# twice" and only delivery "tracking number", so the searches find those topics' calls.
TOPICS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "billing": (
        (
            "Hi, I was charged twice for the {product}, once on {day} and again on {day}.",
            "My last bill came to {amount}, but the plan is supposed to be {amount} a month.",
            "There's a charge of {amount} on my statement that I don't recognise.",
            "I set up a direct debit in {month}, yet I still got a late payment fee.",
            "Can you explain why my invoice went up? Nobody told me about a price change.",
            "So you'll refund {amount}, and how long will that take to reach my card?",
        ),
        (
            "I'm sorry about that. Let me pull up your billing history for the last three months.",
            "I can see the duplicate payment of {amount}; I'll raise a refund right away.",
            "The increase is because the promotional discount ended on {date}.",
            "Refunds usually take three to five working days to appear on your statement.",
            "I've waived the late fee of {amount} as a one-off, as a goodwill gesture.",
            "Could you confirm the last four digits of the card, please?",
        ),
    ),
    "delivery": (
        (
            "My order {order} was due on {day}, and it still hasn't arrived.",
            "The tracking number says it's been sitting in {city} for a week.",
            "The courier left a note, but nobody knocked; I was home all afternoon.",
            "The box arrived damaged, and the {product} inside is cracked.",
            "Can I change the delivery address to {number} {street}, {city}?",
            "I'd rather have a replacement than a refund, honestly.",
        ),
        (
            "Could you read me the tracking number, please?",
            "I can see the parcel left our depot in {city} on {date}.",
            "I've opened an investigation with the courier; the reference is {ref}.",
            "I'll send a replacement {product} by express delivery at no charge.",
            "You'll get an email with a new tracking number within the hour.",
            "Please keep the damaged item until the courier collects it.",
        ),
    ),
    "technical": (
        (
            "The {product} keeps disconnecting every few minutes.",
            "I've restarted it three times already, and the light is still flashing orange.",
            "It worked fine until the update on {day}.",
            'The app says "device offline", but it\'s right next to the router.',
            "Is there an outage in {city}? My neighbours have the same problem.",
        ),
        (
            "Let's try a factory reset: hold the button on the back for ten seconds.",
            "I'm running a line test now; it'll take about two minutes.",
            "There's a known issue with firmware {version}; a fix is rolling out this week.",
            "I'll book an engineer visit for {day} between eight and one.",
            "Can you tell me the serial number on the sticker underneath?",
        ),
    ),
    "account": (
        (
            "I can't log in; it says my password is wrong, but I reset it yesterday.",
            "I moved house, and I need to update my address to {number} {street}, {city}.",
            "Please add my partner, {name}, as an authorised user on the account.",
            "I never received the verification code by text.",
            "I'd like to change the email address on the account.",
        ),
        (
            "For security, can you confirm your date of birth and postcode?",
            "I've sent a one-time code to the number ending in {digits}.",
            "I've unlocked the account; you can sign in again now.",
            "The address is updated, and you'll get a confirmation letter within a week.",
            "I've added {name} with view-only access.",
        ),
    ),
    "cancellation": (
        (
            "I want to cancel my account; I'm moving to another provider.",
            "I'm still in contract until {month}? Nobody mentioned an early termination fee.",
            "Honestly, the service has been unreliable since {month}.",
            "What would it cost to leave now?",
        ),
        (
            "I'm sorry to hear that. Before I process it, may I ask why you're leaving?",
            "The early termination fee would be {amount}, but I can offer three months at half"
            " price.",
            "I can waive the fee if we can't fix the connection within fourteen days.",
            "I've scheduled the cancellation for the end of your billing cycle on {date}.",
        ),
    ),
    "booking": (
        (
            "I need to move my flight from {city} to {city} to {day}.",
            "The hotel booking shows two guests, but we're three.",
            "Can I get a window seat, and is breakfast included?",
            "My connection in {city} is only forty minutes; is that enough?",
        ),
        (
            "There's a seat on the {clock} departure; the fare difference is {amount}.",
            "I've updated the reservation; your new booking reference is {ref}.",
            "Breakfast is included, and check-in opens at three in the afternoon.",
        ),
    ),
    "insurance": (
        (
            "I need to make a claim; my {product} was stolen from the car in {city}.",
            "There was a water leak in the kitchen, and the floor is ruined.",
            "Do I need a police report for the claim?",
            "How much is the excess on my policy?",
        ),
        (
            "I'm sorry to hear that. Was anyone hurt?",
            "Your excess is {amount}, and the claim reference is {ref}.",
            "Please send photos of the damage and any receipts you have.",
            "An assessor will call you within two working days.",
        ),
    ),
    "card": (
        (
            "My card was declined at the supermarket this morning.",
            "I think my card has been cloned; there are payments from {city} I didn't make.",
            "Can you raise my daily withdrawal limit to {amount}?",
            "I'm travelling to {city} next week; do I need to tell you?",
        ),
        (
            "I've frozen the card and ordered a replacement; it'll arrive in three to five days.",
            "I can see three transactions from {city} on {date}; I'll dispute all of them.",
            "The decline was a fraud check; I've cleared it now.",
            "Your new limit is {amount}, effective immediately.",
        ),
    ),
}
AGENT_OPENERS = (
    "Thank you for calling {company}, my name is {agent}. How can I help you today?",
    "Good {part}, you're through to {company} support, {agent} speaking.",
)
CUSTOMER_OPENERS = (
    "Hi, yes, my name is {name}, and I'm calling about my account.",
    "Hello, it's {name} here; I spoke to someone on {day} about this already.",
)
CUSTOMER_FILLERS = (
    "Okay.",
    "Right, that makes sense.",
    "Sorry, could you repeat that?",
    "Yes, that's correct.",
    "Hang on, let me find it.",
    "Sure, it's {digits}.",
    "Is that on the Q&A page, or in the terms & conditions?",
)
AGENT_FILLERS = (
    "Thanks for holding.",
    "Bear with me one moment while I check that.",
    "Let me just confirm that for you.",
    "Is there anything else I can help with?",
)
CUSTOMER_CLOSERS = ("Great, thanks for your help.", "Thank you, bye.")
AGENT_CLOSERS = ("Thanks for calling {company}; have a lovely {part}.",)
BOT_LINES = (
    "Welcome to {company}. Please say the reason for your call.",
    "Your call may be recorded for quality and training.",
    "Please hold while I transfer you to an agent.",
)
_SLOT = re.compile(r"\{(\w+)\}")


class Talk:
    """Fills templates: a call's names stay the same, amounts and numbers change per line."""

    def __init__(self, rng: random.Random, customer: str, agent: str) -> None:
        self.rng = rng
        self.fixed = {"name": customer, "agent": agent, "company": COMPANY}

    def slot(self, name: str) -> str:
        rng = self.rng
        if name in self.fixed:
            return self.fixed[name]
        if name == "amount":
            if rng.random() < 0.2:
                return f"€{rng.randint(5, 1999)},{rng.randint(0, 99):02d}"
            return f"${rng.randint(5, 1999)}.{rng.randint(0, 99):02d}"
        if name == "order":
            return f"{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"
        if name == "ref":
            return f"{rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}{rng.randint(100000, 999999)}"
        if name == "digits":
            return f"{rng.randint(0, 9999):04d}"
        if name == "number":
            return str(rng.randint(1, 240))
        if name == "version":
            return f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"
        if name == "date":
            return f"the {rng.randint(1, 28)}th of {rng.choice(MONTHS)}"
        if name == "clock":
            return f"{rng.randint(6, 21)}:{rng.choice(('00', '15', '30', '45'))}"
        choices = {
            "product": PRODUCTS,
            "city": CITIES,
            "street": STREETS,
            "day": DAYS,
            "month": MONTHS,
            "part": PARTS_OF_DAY,
        }[name]
        return rng.choice(choices)

    def say(self, templates: Sequence[str]) -> str:
        return _SLOT.sub(lambda m: self.slot(m.group(1)), self.rng.choice(templates))


def conversation(
    rng: random.Random, talk: Talk, topic: str, lines: int, bot: bool
) -> Iterator[tuple[str, str]]:
    """(who, text) for ``lines`` finals: who is ``agent``, ``customer`` or ``bot``."""
    customer_lines, agent_lines = TOPICS[topic]
    script: list[tuple[str, str]] = []
    if bot:
        script += [("bot", talk.say(BOT_LINES[:1])), ("bot", talk.say(BOT_LINES[1:]))]
    script += [("agent", talk.say(AGENT_OPENERS)), ("customer", talk.say(CUSTOMER_OPENERS))]
    middle = max(0, lines - len(script) - 2)
    for index in range(middle):
        who = "customer" if index % 2 == 0 else "agent"
        if rng.random() < 0.2:
            text = talk.say(CUSTOMER_FILLERS if who == "customer" else AGENT_FILLERS)
        else:
            text = talk.say(customer_lines if who == "customer" else agent_lines)
        script.append((who, text))
    script += [("customer", talk.say(CUSTOMER_CLOSERS)), ("agent", talk.say(AGENT_CLOSERS))]
    yield from script[:lines]


def words_of(
    rng: random.Random, text: str, start: int, duration: int
) -> tuple[list[dict[str, Any]], float]:
    """Word timings spread over the phrase, each with a confidence; and their mean."""
    parts = text.split()
    each = duration // max(1, len(parts))
    words = []
    total = 0.0
    for index, part in enumerate(parts):
        confidence = round(min(0.99, max(0.3, rng.gauss(0.88, 0.08))), 3)
        total += confidence
        words.append(
            {
                "text": part,
                "offset": start + index * each,
                "duration": each,
                "confidence": confidence,
            }
        )
    return words, round(total / max(1, len(parts)), 4)


# --- data --------------------------------------------------------------------------------------


@dataclass
class Team:
    name: str
    hotline: str  # the number customers call: the calls' callee, "4:+1800..."
    agents: list[str]  # raw ids


@dataclass
class Dataset:
    calls: int = 0
    participants: int = 0
    utterances: int = 0
    alerts: int = 0
    analytics: int = 0
    long_call: int = 0
    long_call_utterances: int = 0
    generate_s: float = 0.0
    vacuum_s: float = 0.0
    database_size: str = ""
    utterance_table_size: str = ""
    teams: list[Team] = field(default_factory=list)


def make_teams() -> list[Team]:
    return [
        Team(
            name=f"Team {k + 1}",
            hotline=f"4:+1800555{k:04d}",
            agents=[f"8:acs:contoso-agent-{k:02d}{a:02d}" for a in range(AGENTS_PER_TEAM)],
        )
        for k in range(TEAMS)
    ]


class CallBuilder:
    """Builds calls with everything that hangs off them and stores them with ``bulk_create``."""

    def __init__(self, rng: random.Random, teams: list[Team], per_call: int) -> None:
        from streaming.acs.identities import identity_from_raw_id
        from streaming.models import AlertRule

        self.rng = rng
        self.teams = teams
        self.per_call = per_call
        self.identity = identity_from_raw_id
        self.rules = {rule.kind: rule.pk for rule in AlertRule.objects.all()}
        self.customers = [self._customer_number(i) for i in range(4000)]
        self.bots = [f"28:acs:ivr-{uuid.UUID(int=rng.getrandbits(128))}" for _ in range(3)]

    def _customer_number(self, index: int) -> str:
        rng = self.rng
        country = rng.choices(("1", "44", "49", "33", "34"), weights=(70, 10, 8, 6, 6))[0]
        return f"4:+{country}{rng.randint(10**8, 10**10 - 1)}"

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def participant(self, call: Any, raw_id: str, at: datetime) -> Any:
        from streaming.models import Participant

        who = self.identity(raw_id)
        return Participant(
            call=call,
            raw_id=raw_id,
            kind=who.kind,
            role=who.role,
            display_label=who.label,
            in_call=False,
            created_at=at,
        )

    def build(
        self, start: datetime, duration: float, state: str, lines: int, team: Team
    ) -> dict[str, Any]:
        """One call and its rows (not saved): participants' raw ids and the finals by who."""
        from streaming.models import Call, CallState, StreamState, TranscriptSource

        rng = self.rng
        ended = state == CallState.ENDED
        ringing = state == CallState.RINGING
        customer = rng.choice(self.customers)
        agent = rng.choice(team.agents)
        third = rng.random()
        bot = rng.choice(self.bots) if third < 0.2 else None
        second_agent = None
        if 0.2 <= third < 0.3:  # a consult or transfer, sometimes to another team
            other = team if rng.random() < 0.7 else rng.choice(self.teams)
            second_agent = rng.choice([a for a in other.agents if a != agent])
        managed = rng.random() < 0.85
        call = Call(
            connection_id=None if ringing else self._uuid(),
            correlation_id=self._uuid(),
            server_call_id="" if ringing else secrets.token_urlsafe(rng.randint(90, 140)),
            managed=managed,
            callback_id=uuid.UUID(int=rng.getrandbits(128), version=4) if managed else None,
            caller=customer,
            caller_display_name="",
            callee=team.hotline,
            media_state="" if ringing else (StreamState.STOPPED if ended else StreamState.STARTED),
            transcription_state=(
                "" if ringing else (StreamState.STOPPED if ended else StreamState.STARTED)
            ),
            state=state,
            transcript_source=rng.choice((TranscriptSource.ACS, TranscriptSource.RECOGNIZER)),
            locale=rng.choices(("en-US", "en-GB", "de-DE", "fr-FR"), weights=(70, 15, 8, 7))[0],
            audio_origin=None if ringing else start,
            sample_rate=None if ringing else 16000,
            started_at=None if ringing else start,
            ended_at=start + timedelta(seconds=duration) if ended else None,
            created_at=start - timedelta(seconds=rng.uniform(2, 25)),
        )
        people = [customer, agent]
        if bot is not None:
            people.insert(0, bot)
        if second_agent is not None:
            people.append(second_agent)
        said: list[tuple[str | None, str, int, int]] = []  # raw id, text, start, duration
        if not ringing and lines:
            name = rng.choice(NAMES)
            talk = Talk(rng, name, rng.choice(FIRST_NAMES))
            topic = rng.choice(tuple(TOPICS))
            step = duration / (lines + 1)
            for index, (who, text) in enumerate(
                conversation(rng, talk, topic, lines, bot is not None)
            ):
                speaker = {"bot": bot, "customer": customer, "agent": agent}[who]
                if who == "agent" and second_agent is not None and index > lines * 2 // 3:
                    speaker = second_agent
                if rng.random() < 0.01:
                    speaker = None  # a final ACS could not attribute
                begin = int((index + rng.uniform(0.1, 0.6)) * step * TICKS_PER_SECOND)
                length = int(min(step * 0.9, rng.uniform(1.2, 6.0)) * TICKS_PER_SECOND)
                said.append((speaker, text, begin, length))
        alerts = rng.choice((1, 1, 1, 2, 2, 3)) if not ringing and rng.random() < 0.25 else 0
        call.last_seq = len(said) + alerts
        return {
            "call": call,
            "people": people,
            "said": said,
            "alerts": alerts,
            "duration": duration,
        }

    def store(self, built: list[dict[str, Any]], dataset: Dataset) -> None:
        """Save a chunk of built calls and their rows in one transaction."""
        from django.db import transaction

        from streaming.models import (
            Alert,
            AlertKind,
            Call,
            CallAnalytics,
            CallState,
            Participant,
            TranscriptSource,
            Utterance,
        )

        rng = self.rng
        with transaction.atomic():
            Call.objects.bulk_create([b["call"] for b in built], batch_size=1000)
            participants = []
            for b in built:
                call = b["call"]
                at = call.created_at
                for k, raw_id in enumerate(b["people"]):
                    participants.append(self.participant(call, raw_id, at + timedelta(seconds=k)))
            Participant.objects.bulk_create(participants, batch_size=2000)
            by_key = {(p.call_id, p.raw_id): p for p in participants}
            utterances: list[Any] = []
            alerts: list[Any] = []
            analytics: list[Any] = []
            for b in built:
                call = b["call"]
                source = (
                    TranscriptSource.ACS
                    if call.transcript_source == TranscriptSource.ACS
                    else TranscriptSource.RECOGNIZER
                )
                seq = 0
                talk_ms: dict[str, int] = {}
                for raw_id, text, begin, length in b["said"]:
                    seq += 1
                    words, confidence = words_of(rng, text, begin, length)
                    person = by_key.get((call.pk, raw_id)) if raw_id else None
                    utterances.append(
                        Utterance(
                            call=call,
                            participant=person,
                            text=text,
                            confidence=confidence,
                            offset_ticks=begin,
                            duration_ticks=length,
                            words=words,
                            source=source,
                            seq=seq,
                            dedupe_key=f"{source}|t{begin}|{raw_id or ''}",
                            created_at=call.started_at
                            + timedelta(seconds=(begin + length) / TICKS_PER_SECOND),
                        )
                    )
                    if raw_id:
                        talk_ms[raw_id] = talk_ms.get(raw_id, 0) + length // TICKS_PER_MS
                for n in range(b["alerts"]):
                    seq += 1
                    kind = rng.choice(list(AlertKind))
                    at_ms = int(rng.uniform(0, b["duration"]) * 1000)
                    speaker = by_key.get((call.pk, b["people"][-1]))
                    alerts.append(
                        Alert(
                            call=call,
                            rule_id=self.rules.get(kind),
                            kind=kind,
                            message=_alert_message(kind, rng),
                            participant=speaker if kind == AlertKind.KEYWORD else None,
                            at_ms=at_ms,
                            episode=f"{kind}:{n}:{at_ms}",
                            seq=seq,
                            fired_at=call.started_at + timedelta(milliseconds=at_ms),
                        )
                    )
                if call.state != CallState.RINGING:
                    analytics.append(_analytics(rng, call, b, talk_ms, by_key))
            Utterance.objects.bulk_create(utterances, batch_size=2000)
            Alert.objects.bulk_create(alerts, batch_size=2000)
            CallAnalytics.objects.bulk_create(analytics, batch_size=2000)
        dataset.calls += len(built)
        dataset.participants += len(participants)
        dataset.utterances += len(utterances)
        dataset.alerts += len(alerts)
        dataset.analytics += len(analytics)


def _alert_message(kind: str, rng: random.Random) -> str:
    from streaming.models import AlertKind

    messages: dict[str, str] = {
        AlertKind.KEYWORD: "Customer wants to cancel: “cancel my account”",
        AlertKind.DEAD_AIR: f"Dead air for {rng.randint(6, 40)} s",
        AlertKind.MONOLOGUE: f"Monologue of {rng.randint(61, 180)} s",
        AlertKind.OVERTALK: f"Overtalk {rng.randint(26, 60)} % over 30 s",
        AlertKind.SENTIMENT: f"Customer negative for {rng.randint(3, 6)} finals",
        AlertKind.HOLD: f"On hold for more than {rng.randint(61, 300)} s",
        AlertKind.DTMF: "Card typed: the customer entered DTMF tones",
        AlertKind.PHRASE_WINDOW: "Greeting: “thank you for calling” not said in the first 10 s",
        AlertKind.TALK_RATIO: f"Agent talks too much: {rng.randint(71, 95)} %, above 70 %",
    }
    return messages[kind]


def _analytics(
    rng: random.Random,
    call: Any,
    built: dict[str, Any],
    talk_ms: dict[str, int],
    by_key: dict[tuple[int, str], Any],
) -> Any:
    from streaming.models import CallAnalytics, CallState, ParticipantRole

    duration_ms = int(built["duration"] * 1000)
    talk = min(duration_ms, sum(talk_ms.values()))
    agents = sum(
        ms
        for raw_id, ms in talk_ms.items()
        if by_key[(call.pk, raw_id)].role == ParticipantRole.AGENT
    )
    speakers = []
    timeline: dict[str, list[list[int]]] = {}
    for raw_id, ms in talk_ms.items():
        person = by_key[(call.pk, raw_id)]
        speakers.append(
            {
                "key": raw_id,
                "label": person.display_label,
                "role": person.role,
                "talk_ms": ms,
                "share": round(ms / duration_ms, 4) if duration_ms else None,
                "ratio": round(ms / talk, 4) if talk else None,
                "longest_monologue_ms": min(ms, rng.randint(5_000, 60_000)),
                "current_monologue_ms": 0,
                "interruptions": rng.randint(0, 4),
                "words": ms // 400,
                "wpm": round(rng.uniform(110, 170), 1),
            }
        )
    for raw_id, _text, begin, length in built["said"][:40]:
        if raw_id:
            timeline.setdefault(raw_id, []).append(
                [begin // TICKS_PER_MS, (begin + length) // TICKS_PER_MS]
            )
    return CallAnalytics(
        call=call,
        source=CallAnalytics.Source.AUDIO,
        final=call.state == CallState.ENDED,
        duration_ms=duration_ms,
        talk_ms=talk,
        overlap_ms=int(talk * rng.uniform(0, 0.05)),
        silence_ms=max(0, duration_ms - talk),
        longest_silence_ms=rng.randint(1_000, 20_000),
        longest_monologue_ms=rng.randint(5_000, 90_000),
        interruptions=rng.randint(0, 8),
        agent_talk_ratio=round(agents / talk, 4) if talk else None,
        speakers=speakers,
        timeline=timeline,
    )


def generate(args: argparse.Namespace, dataset: Dataset) -> None:
    """The calls over the last 90 days, oldest first (ids grow with time), then the long call."""
    from streaming.models import CallState

    rng = random.Random(args.seed)
    dataset.teams = make_teams()
    gen = CallBuilder(rng, dataset.teams, args.per_call)
    now = datetime.now(UTC)
    span = HISTORY_DAYS * 86400
    starts = sorted(rng.uniform(0, span) for _ in range(args.calls))
    started = time.monotonic()
    chunk: list[dict[str, Any]] = []
    report_every = max(CHUNK, args.calls // 10 // CHUNK * CHUNK)
    for index, ago in enumerate(reversed(starts)):  # oldest first: ids grow with time
        # the newest calls are still running or ringing, the rest have ended
        position = args.calls - index  # 1 for the newest
        if position <= 2:
            state = CallState.RINGING
        elif position <= 8:
            state = CallState.CONNECTED
        else:
            state = CallState.ENDED
        duration = min(2700.0, max(20.0, rng.lognormvariate(math.log(240), 0.7)))
        if state != CallState.ENDED:
            ago = min(ago, rng.uniform(30, 600))
        start = now - timedelta(seconds=ago + (duration if state == CallState.ENDED else 0))
        low, high = max(2, args.per_call // 2), max(2, args.per_call * 3 // 2)
        lines = rng.randint(low, high)
        if state == CallState.CONNECTED:
            lines = max(2, lines // 2)
        chunk.append(gen.build(start, duration, state, lines, rng.choice(dataset.teams)))
        if len(chunk) == CHUNK:
            gen.store(chunk, dataset)
            chunk = []
            if dataset.calls % report_every == 0:
                print(
                    f"  {dataset.calls}/{args.calls} calls, {dataset.utterances} finals,"
                    f" {dataset.alerts} alerts ({time.monotonic() - started:.0f} s)",
                    flush=True,
                )
    if chunk:
        gen.store(chunk, dataset)
    dataset.long_call = long_call(gen, dataset, args.utterances, now)
    dataset.generate_s = time.monotonic() - started


def long_call(gen: CallBuilder, dataset: Dataset, lines: int, now: datetime) -> int:
    """A 2-hour call of ``lines`` finals on the supervisor's team: agent, customer, and a
    second agent who joins after the first hour; a few finals have no speaker."""
    from django.db import transaction

    from streaming.models import (
        Call,
        CallAnalytics,
        CallState,
        Participant,
        StreamState,
        TranscriptSource,
        Utterance,
    )

    rng = gen.rng
    team = dataset.teams[0]
    start = (now - timedelta(days=1)).replace(hour=9, minute=30, second=0, microsecond=0)
    agent, second, customer = team.agents[0], team.agents[1], "4:+4915112345678"
    call = Call(
        connection_id="bench-long-call-" + gen._uuid(),
        correlation_id=gen._uuid(),
        server_call_id=secrets.token_urlsafe(120),
        managed=True,
        callback_id=uuid.uuid4(),
        caller=customer,
        caller_display_name="Zoë Ångström-Núñez",
        callee=team.hotline,
        media_state=StreamState.STOPPED,
        transcription_state=StreamState.STOPPED,
        state=CallState.ENDED,
        transcript_source=TranscriptSource.ACS,
        locale="en-US",
        audio_origin=start,
        sample_rate=16000,
        started_at=start,
        ended_at=start + timedelta(seconds=LONG_CALL_SECONDS),
        created_at=start - timedelta(seconds=12),
        last_seq=lines,
    )
    talk = Talk(rng, "Zoë Ångström-Núñez", "Søren")
    topics = list(TOPICS)
    script: list[tuple[str, str]] = []
    while len(script) < lines:
        topic = rng.choice(topics)
        script += list(conversation(rng, talk, topic, rng.randint(12, 30), bot=False))[2:-2]
    script = script[:lines]
    with transaction.atomic():
        call.save()
        people = {
            raw_id: gen.participant(call, raw_id, start + timedelta(seconds=k))
            for k, raw_id in enumerate((customer, agent, second))
        }
        people[customer].display_label = "Zoë Ångström-Núñez"
        Participant.objects.bulk_create(people.values())
        step = LONG_CALL_SECONDS / lines
        utterances = []
        talk_ms: dict[str, int] = {}
        for index, (who, text) in enumerate(script):
            raw_id: str | None = customer if who == "customer" else agent
            if raw_id == agent and index > lines // 2 and rng.random() < 0.4:
                raw_id = second
            if rng.random() < 0.01:
                raw_id = None
            begin = int((index + rng.uniform(0.05, 0.3)) * step * TICKS_PER_SECOND)
            length = int(rng.uniform(1.0, step * 0.8) * TICKS_PER_SECOND)
            words, confidence = words_of(rng, text, begin, length)
            utterances.append(
                Utterance(
                    call=call,
                    participant=people[raw_id] if raw_id else None,
                    text=text,
                    confidence=confidence,
                    offset_ticks=begin,
                    duration_ticks=length,
                    words=words,
                    source=TranscriptSource.ACS,
                    seq=index + 1,
                    dedupe_key=f"acs|t{begin}|{raw_id or ''}",
                    created_at=start + timedelta(seconds=(begin + length) / TICKS_PER_SECOND),
                )
            )
            if raw_id:
                talk_ms[raw_id] = talk_ms.get(raw_id, 0) + length // TICKS_PER_MS
        Utterance.objects.bulk_create(utterances, batch_size=1000)
        built = {"duration": float(LONG_CALL_SECONDS), "said": []}
        CallAnalytics.objects.bulk_create(
            [_analytics(rng, call, built, talk_ms, {(call.pk, k): p for k, p in people.items()})]
        )
    dataset.calls += 1
    dataset.participants += len(people)
    dataset.utterances += len(utterances)
    dataset.analytics += 1
    dataset.long_call_utterances = len(utterances)
    return int(call.pk)


def query_value(cursor: Any, sql: str) -> str:
    cursor.execute(sql)
    row = cursor.fetchone()
    return str(row[0]) if row else ""


def vacuum_analyze(dataset: Dataset) -> None:
    from django.db import connection

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        dataset.database_size = query_value(
            cursor, "SELECT pg_size_pretty(pg_database_size(current_database()))"
        )
        dataset.utterance_table_size = query_value(
            cursor, "SELECT pg_size_pretty(pg_total_relation_size('streaming_utterance'))"
        )
    dataset.vacuum_s = time.monotonic() - started


# --- viewers -----------------------------------------------------------------------------------


@dataclass
class Viewer:
    name: str
    description: str
    token: str
    session: str  # the session cookie's value
    visible: int  # calls this viewer may see

    def headers(self, auth: str) -> dict[str, str]:
        from django.conf import settings

        if auth == "token":
            return {"Authorization": f"Token {self.token}"}
        return {"Cookie": f"{settings.SESSION_COOKIE_NAME}={self.session}"}


def make_viewers(dataset: Dataset) -> list[Viewer]:
    """Staff (every call), and a supervisor of the first team (its hotline and agents)."""
    from django.conf import settings
    from django.contrib.auth.models import Group
    from django.contrib.auth.models import User as UserModel
    from django.test import Client
    from rest_framework.authtoken.models import Token

    from dashboard.models import Team as TeamModel
    from dashboard.models import TeamAddress
    from dashboard.permissions import STAFF_GROUP, SUPERVISORS_GROUP, visible_calls

    supervisors = Group.objects.get(name=SUPERVISORS_GROUP)
    staff_group = Group.objects.get(name=STAFF_GROUP)
    first_team = None
    for team in dataset.teams:
        row = TeamModel.objects.create(name=team.name)
        first_team = first_team or row
        TeamAddress.objects.create(team=row, address=team.hotline)
        for agent in team.agents:
            TeamAddress.objects.create(team=row, address=agent)
    assert first_team is not None

    def user(name: str, *groups: Any) -> User:
        made = UserModel.objects.create_user(
            name, password=secrets.token_urlsafe(16), is_staff=True
        )
        made.groups.add(*groups)
        return made

    staff = user("bench-staff", supervisors, staff_group)
    supervisor = user("bench-supervisor", supervisors)
    first_team.members.add(supervisor)
    viewers = []
    for person, name, description in (
        (staff, "staff", "Staff: every call"),
        (supervisor, "supervisor", f"team supervisor: {first_team.name}'s calls"),
    ):
        client = Client()
        client.force_login(person)
        viewers.append(
            Viewer(
                name=name,
                description=description,
                token=Token.objects.create(user=person).key,
                session=client.cookies[settings.SESSION_COOKIE_NAME].value,
                visible=visible_calls(person).count(),
            )
        )
    return viewers
