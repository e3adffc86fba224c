"""One try of one delivery: POST a webhook, or send an e-mail. Blocking (run in a thread).

Nothing here logs or returns the destination's URL or secret: a chat webhook's URL is itself
a credential. Errors name the status or the kind of failure only.
"""

from __future__ import annotations

import http.client
import smtplib
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMessage

from streaming.delivery import formats
from streaming.delivery.formats import AlertNotice
from streaming.models import DestinationKind

# Answers worth trying again: the receiver is down, busy or asks us to slow down.
RETRY_STATUSES = frozenset({408, 425, 429}) | frozenset(range(500, 600))


@dataclass(frozen=True, slots=True)
class DeliveryJob:
    """A delivery as a worker takes it from the outbox: everything one try needs."""

    delivery_id: int
    attempt: int  # 1 for the first try
    kind: str
    url: str
    secret: str
    recipients: tuple[str, ...]
    key: str
    notice: AlertNotice


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    retry: bool  # worth trying again (a failure the receiver may get over)
    status_code: int | None = None
    error: str = ""
    duration_ms: int = 0


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not an instruction: a signed body is never re-sent elsewhere."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def send(job: DeliveryJob) -> Outcome:
    started = time.monotonic()
    outcome = _email(job) if job.kind == DestinationKind.EMAIL else _post(job)
    elapsed = round((time.monotonic() - started) * 1000)
    return Outcome(outcome.ok, outcome.retry, outcome.status_code, outcome.error[:500], elapsed)


def _post(job: DeliveryJob) -> Outcome:
    if job.kind == DestinationKind.CHAT:
        body = formats.chat_body(job.notice, key=job.key)
    else:
        body = formats.webhook_body(job.notice, key=job.key)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Callsite alert delivery",
        formats.IDEMPOTENCY_HEADER: job.key,
        "X-Callsite-Delivery": str(job.delivery_id),
        "X-Callsite-Attempt": str(job.attempt),
    }
    if job.secret:
        headers[formats.SIGNATURE_HEADER] = formats.signature(job.secret, body)
    request = urllib.request.Request(job.url, data=body, headers=headers, method="POST")
    timeout = settings.CALLSITE_ALERT_DELIVERY_TIMEOUT_SECONDS
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status = response.status
            response.read(65536)
    except urllib.error.HTTPError as error:
        status = error.code
        error.close()
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        reason = getattr(error, "reason", error)
        return Outcome(False, True, error=f"{type(error).__name__}: {reason}")
    if 200 <= status < 300:
        return Outcome(True, False, status)
    return Outcome(False, status in RETRY_STATUSES, status, f"HTTP {status}")


def _email(job: DeliveryJob) -> Outcome:
    subject, text = formats.email_message(job.notice)
    message = EmailMessage(
        subject,
        text,
        None,
        list(job.recipients),
        headers={"X-Callsite-Idempotency-Key": job.key},
    )
    try:
        message.send(fail_silently=False)
    except (smtplib.SMTPException, OSError) as error:
        return Outcome(False, True, error=f"{type(error).__name__}: {error}")
    return Outcome(True, False)
