"""What a delivery sends: the webhook's JSON and its signature, the chat message, the e-mail.

Pure functions of a :class:`AlertNotice`, the alert as the outbox hands it to the sender.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass

SIGNATURE_HEADER = "X-Callsite-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class AlertNotice:
    """An alert as its deliveries describe it."""

    id: int
    call_id: int
    connection_id: str
    kind: str
    rule: str
    message: str
    at_ms: int
    episode: str
    speaker: str | None
    speaker_label: str | None
    fired_at: str
    call_url: str  # the call's page, when CALLSITE_PUBLIC_URL is set; else ""


def webhook_body(notice: AlertNotice, *, key: str) -> bytes:
    """The webhook's JSON body (UTF-8, compact, keys sorted): the bytes that are signed."""
    body = {"type": "alert.fired", "idempotency_key": key, "alert": asdict(notice)}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the body, keyed with the destination's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(secret: str, body: bytes, header: str) -> bool:
    """Whether ``header`` is the signature of ``body`` (in constant time): for receivers."""
    return hmac.compare_digest(signature(secret, body), header)


def clock(at_ms: int) -> str:
    """Where in the call, as minutes and seconds (``1:05``)."""
    return f"{at_ms // 60000}:{at_ms // 1000 % 60:02d}"


def summary(notice: AlertNotice) -> str:
    where = f"call {notice.connection_id or notice.call_id}"
    return f"{notice.message} ({where}, at {clock(notice.at_ms)})"


def chat_body(notice: AlertNotice, *, key: str) -> bytes:
    """A message for a Slack or Microsoft Teams incoming webhook.

    Slack reads ``text`` (and shows ``blocks``); Teams' incoming webhooks read the
    ``MessageCard`` fields (``@type``, ``summary``, ``title``, ``text``). Each ignores the
    other's fields, so one body serves both.
    """
    text = summary(notice)
    if notice.call_url:
        text += f" <{notice.call_url}|Open the call>"
    title = f"Callsite alert: {notice.rule or notice.kind}"
    body = {
        "text": f"*{title}*\n{text}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        ],
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": title,
        "title": title,
        "themeColor": "CF222E",
        "callsite_idempotency_key": key,
    }
    if notice.call_url:
        body["potentialAction"] = [
            {
                "@type": "OpenUri",
                "name": "Open the call",
                "targets": [{"os": "default", "uri": notice.call_url}],
            }
        ]
    return json.dumps(body, ensure_ascii=False).encode()


def email_message(notice: AlertNotice) -> tuple[str, str]:
    """The e-mail's subject and plain-text body."""
    subject = (
        f"[Callsite] {notice.rule or notice.kind}: call {notice.connection_id or notice.call_id}"
    )
    lines = [
        notice.message,
        "",
        f"Call: {notice.connection_id or notice.call_id}",
        f"At: {clock(notice.at_ms)} into the call",
        f"Fired: {notice.fired_at}",
    ]
    if notice.speaker_label:
        lines.append(f"About: {notice.speaker_label}")
    if notice.call_url:
        lines += ["", f"Open the call: {notice.call_url}"]
    return subject[:200].replace("\n", " "), "\n".join(lines) + "\n"
