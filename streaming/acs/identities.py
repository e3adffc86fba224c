"""What an ACS raw id says about a participant: its kind, a likely role and a readable label.

In a contact centre, customers dial in from the phone network and agents are ACS or Teams
identities, so the raw id's prefix is a good first guess at the role. Call Automation events
(``ParticipantsUpdated``) and the admin can refine it later.
"""

from __future__ import annotations

from dataclasses import dataclass

from streaming.models import ParticipantKind, ParticipantRole

# Longest prefixes first: "8:acs:" must win over a bare "8:".
_PREFIXES: tuple[tuple[str, ParticipantKind, ParticipantRole], ...] = (
    ("8:dod-acs:", ParticipantKind.ACS_USER, ParticipantRole.AGENT),
    ("8:gcch-acs:", ParticipantKind.ACS_USER, ParticipantRole.AGENT),
    ("8:acs:", ParticipantKind.ACS_USER, ParticipantRole.AGENT),
    ("8:spool:", ParticipantKind.ACS_USER, ParticipantRole.AGENT),
    ("8:teamsvisitor:", ParticipantKind.TEAMS_USER, ParticipantRole.AGENT),
    ("8:orgid:", ParticipantKind.TEAMS_USER, ParticipantRole.AGENT),
    ("8:dod:", ParticipantKind.TEAMS_USER, ParticipantRole.AGENT),
    ("8:gcch:", ParticipantKind.TEAMS_USER, ParticipantRole.AGENT),
    ("28:", ParticipantKind.BOT, ParticipantRole.BOT),
    ("4:", ParticipantKind.PHONE, ParticipantRole.CUSTOMER),
)


@dataclass(frozen=True)
class Identity:
    """A participant's kind, role and label, inferred from its raw id."""

    kind: ParticipantKind
    role: ParticipantRole
    label: str


# Participant.display_label; a raw id may be longer (300), a label never is.
MAX_LABEL = 200


def identity_from_raw_id(raw_id: str) -> Identity:
    """Infer kind, role and a display label from an ACS ``participantRawID``."""
    for prefix, kind, role in _PREFIXES:
        if raw_id.startswith(prefix):
            rest = raw_id[len(prefix) :]
            return Identity(kind, role, _fit(_label(kind, rest)))
    return Identity(
        ParticipantKind.UNKNOWN,
        ParticipantRole.UNKNOWN,
        f"Speaker {_tail(raw_id)}".strip() if raw_id else "Unknown speaker",
    )


def _fit(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def _label(kind: ParticipantKind, rest: str) -> str:
    if kind == ParticipantKind.PHONE:
        return rest or "Caller"
    if kind == ParticipantKind.BOT:
        return f"Bot {_tail(rest)}".strip()
    if kind == ParticipantKind.TEAMS_USER:
        return f"Teams user {_tail(rest)}".strip()
    return f"Agent {_tail(rest)}".strip()


def _tail(value: str) -> str:
    """The last few characters of an id: enough to tell two agents apart on screen."""
    cleaned = value.strip().rstrip("…")
    return cleaned[-4:] if len(cleaned) > 4 else cleaned


def address_raw_id(value: str) -> tuple[str, str]:
    """``(raw id, phone number)`` for a phone number or ACS identity as people type them.

    ``+1 555 123-0000`` and ``4:+15551230000`` are the same phone line (number
    ``+15551230000``); an ACS user, Teams user or bot is its raw id (``8:acs:...``) as is, with
    no number. Raises ``ValueError`` for anything else.
    """
    text = value.strip()
    if text.startswith("4:"):
        text = text[2:]
    if text.startswith("+"):
        digits = "".join(ch for ch in text[1:] if ch.isdigit())
        if not digits:
            raise ValueError(f"{value!r} is not a phone number")
        return f"4:+{digits}", f"+{digits}"
    if ":" not in text or " " in text:
        raise ValueError(
            f"{value!r} is neither a phone number (+E.164) nor an ACS raw id (8:acs:...)"
        )
    return text, ""
