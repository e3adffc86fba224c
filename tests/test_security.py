"""Every entry point refuses requests that are unauthenticated or authenticated wrongly.

``TABLE`` is the one place to read: each row is an entry point, an attack on it and the answer
it must get. Rows whose attack starts with "control" are the legitimate request, proving that
the refusals around them are refusals and not a broken request. A refused request must also
leave every call as it was. ``test_every_route_is_in_the_table`` fails when a URL or socket
route has no row.

HTTP rows go through Django's test client from a remote address (what Daphne reports behind
nginx); socket rows through ``WebsocketCommunicator`` against ``callsite.asgi.application``,
so routing, the Origin check and the session middleware are the real ones.

Modes of ACS authentication (``acs=``): ``secret``, the test settings (a shared secret, no
token verification); ``jwt``, ACS's signed tokens verified against a local key set as well;
``none``, neither configured and DEBUG off.

After the table: request size limits, the metrics endpoint behind a real proxy-header parser,
and what /readyz tells whom.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from rest_framework.authtoken.models import Token

from callsite.asgi import application
from dashboard.models import Team, TeamAddress
from dashboard.permissions import SUPERVISORS_GROUP
from dashboard.routing import websocket_urlpatterns as dashboard_routes
from streaming.acs import tokens
from streaming.ingest.routing import websocket_urlpatterns as streaming_routes
from streaming.models import Alert, Call, CallEvent, CallState, Participant, Utterance
from tests.dashboard.api.conftest import (
    CONVERSATION,
    OTHER_LINE,
    TEAM_LINE,
    Said,
    make_call,
    user_in,
)
from tests.factories import make_recording, session_cookie
from tests.helpers import clear_cache
from tests.standins.jwks import AUDIENCE, ISSUER, SigningKey, jwks

ROOT = Path(__file__).resolve().parent.parent
PACKETS = Path(__file__).resolve().parent / "fixtures" / "acs-packets"

SECRET = "tests-only-acs-secret-0123456789"  # tests/settings.py
METRICS_TOKEN = "metrics-token-for-tests-0123456789"
REMOTE = "203.0.113.7"  # a client on the internet, as Daphne reports it behind nginx
GOOD_ORIGIN = "http://localhost"  # in the test ALLOWED_HOSTS
CALL_HEADER = {"x-ms-call-connection-id": "security-call"}
PASSWORD = "right-password-123"


def _packet(name: str) -> str:
    return (PACKETS / name).read_text()


BODIES = {
    "validation": _packet("eventgrid_subscription_validation_event.json"),
    "connected": _packet("sdk-python-recorded_media_call_connected.json"),
}
VALIDATION_CODE = "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"
LOGIN_FORM = {"username": "teamsup", "password": PASSWORD}


# --- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Http:
    """An HTTP request and the answer it must get.

    ``path`` and header values may name ``{team_call}``, ``{other_call}``, ``{callback}`` and
    the credentials in ``World.values``. ``who`` is whose session cookie is sent (None: none).
    ``csrf``: "off" (the test client's default: no CSRF checks), "missing" (checks on, no
    token sent) or "sent" (checks on, the token sent). ``form`` posts the named form fields.
    """

    entry: str
    attack: str
    method: str
    path: str
    status: int
    who: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    form: dict[str, str] | None = None
    csrf: str = "off"
    acs: str = "secret"
    remote: str = REMOTE
    location: str | None = None
    shows: tuple[str, ...] = ()
    hides: tuple[str, ...] = ()

    @property
    def control(self) -> bool:
        return self.attack.startswith("control")


@dataclass(frozen=True)
class Socket:
    """A WebSocket handshake, accepted or not; ``shows``/``hides`` apply to the first message."""

    entry: str
    attack: str
    path: str
    accepted: bool
    who: str | None = None
    origin: str | None = GOOD_ORIGIN
    headers: dict[str, str] = field(default_factory=dict)
    acs: str = "secret"
    shows: tuple[str, ...] = ()
    hides: tuple[str, ...] = ()

    @property
    def control(self) -> bool:
        return self.attack.startswith("control")


# ACS's signed tokens, each wrong in one way (World.values builds them).
JWT_ATTACKS = [
    ("expired token", "jwt_expired"),
    ("token for another ACS resource (audience)", "jwt_wrong_audience"),
    ("token from another issuer", "jwt_wrong_issuer"),
    ("forged: another key signing under the published key id", "jwt_forged"),
    ("signed by a key ACS never published", "jwt_unknown_key"),
    ("unsigned (alg: none)", "jwt_none"),
    ("HS256 keyed with the public key", "jwt_hs256"),
    ("claims changed after signing", "jwt_tampered"),
    ("not yet valid (issued in the future)", "jwt_future"),
    ("no expiry claim", "jwt_no_expiry"),
    ("not a JWT", "jwt_garbage"),
]

ACS_WS = "ws /ws/acs/ (ACS ingest)"
EVENTS = "POST /acs/events/ (Event Grid)"
CALLBACKS = "POST /acs/callbacks/<id>/ (Call Automation)"
WALL = "GET / (call wall)"
HISTORY = "GET /history/"
CALL_PAGE = "GET /calls/<id>/"
ACTION = "POST /calls/<id>/actions/<action>/"
PAUSE = "POST /calls/<id>/secure-pause/"
NEW_CALL = "POST /calls/new/<how>/ (place a call, connect to a room)"
WALL_WS = "ws /ws/dashboard/"
CALL_WS = "ws /ws/dashboard/calls/<id>/"
LISTEN_WS = "ws /ws/dashboard/calls/<id>/listen/"
API = "/api/"
ADMIN = "/admin/"
LOGIN = "/accounts/login/"
LOGOUT = "/accounts/logout/"
METRICS = "GET /metrics"
HEALTHZ = "GET /healthz"
READYZ = "GET /readyz"
LOGIN_AT = "/accounts/login/?next="

TABLE: list[Http | Socket] = [
    # --- ACS ingest socket: shared secret, then ACS's JWT, then nothing configured ------------
    Socket(ACS_WS, "control: the shared secret", f"/ws/acs/?token={SECRET}", True,
           origin=None, headers=CALL_HEADER),
    Socket(ACS_WS, "no token", "/ws/acs/", False, origin=None, headers=CALL_HEADER),
    Socket(ACS_WS, "wrong token", "/ws/acs/?token=not-the-secret-0123456789", False,
           origin=None, headers=CALL_HEADER),
    Socket(ACS_WS, "the secret less its last character", f"/ws/acs/?token={SECRET[:-1]}",
           False, origin=None, headers=CALL_HEADER),
    Socket(ACS_WS, "the secret as a bearer token, not ?token=", "/ws/acs/", False,
           origin=None, headers={**CALL_HEADER, "authorization": f"Bearer {SECRET}"}),
    Socket(ACS_WS, "browser page with a supervisor's session, no token", "/ws/acs/", False,
           who="team", headers=CALL_HEADER),
    Socket(ACS_WS, "control: JWT from ACS", "/ws/acs/", True, origin=None, acs="jwt",
           headers={**CALL_HEADER, "authorization": "Bearer {jwt_valid}"}),
    *(
        Socket(ACS_WS, f"JWT: {attack}", "/ws/acs/", False, origin=None, acs="jwt",
               headers={**CALL_HEADER, "authorization": f"Bearer {{{key}}}"})
        for attack, key in JWT_ATTACKS
    ),
    Socket(ACS_WS, "JWT: a bad token is not rescued by the right ?token=",
           f"/ws/acs/?token={SECRET}", False, origin=None, acs="jwt",
           headers={**CALL_HEADER, "authorization": "Bearer {jwt_expired}"}),
    Socket(ACS_WS, "JWT: Basic credentials instead of a bearer token", "/ws/acs/", False,
           origin=None, acs="jwt", headers={**CALL_HEADER, "authorization": "Basic YWNzOmFjcw=="}),
    Socket(ACS_WS, "nothing configured, DEBUG off: no token", "/ws/acs/", False,
           origin=None, acs="none", headers=CALL_HEADER),
    Socket(ACS_WS, "nothing configured, DEBUG off: any token", "/ws/acs/?token=anything-at-all",
           False, origin=None, acs="none", headers=CALL_HEADER),
    # --- Event Grid webhook: the shared secret in the subscription URL is its only key ---------
    Http(EVENTS, "control: subscription handshake with the secret", "POST",
         f"/acs/events/?token={SECRET}", 200, body="validation", shows=(VALIDATION_CODE,)),
    Http(EVENTS, "handshake without the secret (subscribing someone else's URL)", "POST",
         "/acs/events/", 401, body="validation", hides=(VALIDATION_CODE,)),
    Http(EVENTS, "wrong secret", "POST", "/acs/events/?token=not-the-secret-0123456789", 401,
         body="validation", hides=(VALIDATION_CODE,)),
    Http(EVENTS, "the secret in an Authorization header instead", "POST", "/acs/events/", 401,
         body="validation", headers={"Authorization": f"Bearer {SECRET}"},
         hides=(VALIDATION_CODE,)),
    Http(EVENTS, "a valid ACS JWT instead of the secret", "POST", "/acs/events/", 401,
         acs="jwt", body="validation", headers={"Authorization": "Bearer {jwt_valid}"},
         hides=(VALIDATION_CODE,)),
    Http(EVENTS, "CloudEvents OPTIONS handshake without the secret", "OPTIONS", "/acs/events/",
         401, headers={"WebHook-Request-Origin": "eventgrid.azure.net"}),
    Http(EVENTS, "nothing configured, DEBUG off", "POST", "/acs/events/?token=anything-at-all",
         401, acs="none", body="validation", hides=(VALIDATION_CODE,)),
    Http(EVENTS, "GET with the secret", "GET", f"/acs/events/?token={SECRET}", 405),
    # --- Call Automation callbacks: the secret, or ACS's JWT when verification is on --------
    Http(CALLBACKS, "control: the shared secret", "POST",
         f"/acs/callbacks/{{callback}}/?token={SECRET}", 200, body="connected"),
    Http(CALLBACKS, "no credentials", "POST", "/acs/callbacks/{callback}/", 401,
         body="connected"),
    Http(CALLBACKS, "wrong secret", "POST",
         "/acs/callbacks/{callback}/?token=not-the-secret-0123456789", 401, body="connected"),
    Http(CALLBACKS, "right secret, unknown callback id", "POST",
         f"/acs/callbacks/{uuid.UUID(int=7)}/?token={SECRET}", 404, body="connected"),
    Http(CALLBACKS, "control: JWT from ACS", "POST", "/acs/callbacks/{callback}/", 200,
         acs="jwt", body="connected", headers={"Authorization": "Bearer {jwt_valid}"}),
    *(
        Http(CALLBACKS, f"JWT: {attack}", "POST", "/acs/callbacks/{callback}/", 401, acs="jwt",
             body="connected", headers={"Authorization": f"Bearer {{{key}}}"})
        for attack, key in JWT_ATTACKS
    ),
    Http(CALLBACKS, "JWT: a bad token is not rescued by the right ?token=", "POST",
         f"/acs/callbacks/{{callback}}/?token={SECRET}", 401, acs="jwt", body="connected",
         headers={"Authorization": "Bearer {jwt_forged}"}),
    Http(CALLBACKS, "nothing configured, DEBUG off", "POST",
         "/acs/callbacks/{callback}/?token=anything-at-all", 401, acs="none", body="connected"),
    # --- Supervisor pages -------------------------------------------------------------------
    Http(WALL, "control: a supervisor", "GET", "/", 200, who="team"),
    Http(WALL, "anonymous", "GET", "/", 302, location=LOGIN_AT),
    Http(WALL, "forged session cookie", "GET", "/", 302, who="forged", location=LOGIN_AT),
    Http(WALL, "session of a deactivated supervisor", "GET", "/", 302, who="inactive",
         location=LOGIN_AT),
    Http(WALL, "session from before a password change", "GET", "/", 302, who="stale",
         location=LOGIN_AT),
    Http(WALL, "logged in, not a supervisor", "GET", "/", 403, who="outsider"),
    Http(HISTORY, "control: a supervisor sees their team's calls", "GET", "/history/", 200,
         who="team", shows=("team-call",)),
    Http(HISTORY, "anonymous", "GET", "/history/", 302, location=LOGIN_AT),
    Http(HISTORY, "logged in, not a supervisor", "GET", "/history/", 403, who="outsider"),
    Http(HISTORY, "another team's calls are not listed, even searched for", "GET",
         "/history/?q=cancel+subscription", 200, who="team", hides=("other-call",)),
    Http(CALL_PAGE, "control: a supervisor, their team's call", "GET", "/calls/{team_call}/",
         200, who="team", shows=("team-call",)),
    Http(CALL_PAGE, "anonymous", "GET", "/calls/{team_call}/", 302, location=LOGIN_AT),
    Http(CALL_PAGE, "logged in, not a supervisor", "GET", "/calls/{team_call}/", 403,
         who="outsider"),
    Http(CALL_PAGE, "another team's call", "GET", "/calls/{other_call}/", 404, who="team",
         hides=("other-call",)),
    Http(PAUSE, "control: a supervisor pauses their team's live call, with the CSRF token",
         "POST", "/calls/{team_live_call}/secure-pause/", 200, who="team", csrf="sent",
         form={"paused": "on"}, headers={"Accept": "application/json"},
         shows=('"secure_pause": true',)),
    Http(PAUSE, "anonymous", "POST", "/calls/{team_live_call}/secure-pause/", 302,
         form={"paused": "on"}, location=LOGIN_AT),
    Http(PAUSE, "logged in, not a supervisor", "POST", "/calls/{team_live_call}/secure-pause/",
         403, who="outsider", form={"paused": "on"}),
    Http(PAUSE, "a supervisor without the CSRF token (cross-site)", "POST",
         "/calls/{team_live_call}/secure-pause/", 403, who="team", form={"paused": "on"},
         csrf="missing"),
    Http(PAUSE, "another team's call", "POST", "/calls/{other_call}/secure-pause/", 404,
         who="team", form={"paused": "on"}),
    Http(PAUSE, "GET (a link or an image tag)", "GET", "/calls/{team_live_call}/secure-pause/",
         405, who="team"),
    Http(ACTION, "control: a supervisor who may control calls, with the CSRF token", "POST",
         "/calls/{team_call}/actions/hang-up/", 302, who="controller", form={}, csrf="sent",
         location="/calls/"),
    Http(ACTION, "anonymous", "POST", "/calls/{team_call}/actions/hang-up/", 302, form={},
         location=LOGIN_AT),
    Http(ACTION, "logged in, not a supervisor", "POST", "/calls/{team_call}/actions/hang-up/",
         403, who="outsider", form={}),
    Http(ACTION, "a supervisor without the control permission", "POST",
         "/calls/{team_call}/actions/hang-up/", 403, who="team", form={}),
    Http(ACTION, "cross-site form post (no CSRF token)", "POST",
         "/calls/{team_call}/actions/hang-up/", 403, who="controller", form={}, csrf="missing"),
    Http(ACTION, "another team's call", "POST", "/calls/{other_call}/actions/hang-up/", 404,
         who="controller", form={}, csrf="sent"),
    Http(ACTION, "GET (a link or an image tag)", "GET", "/calls/{team_call}/actions/hang-up/",
         405, who="controller"),
    Http(ACTION, "a supervisor who may control calls, not manage participants", "POST",
         "/calls/{team_call}/actions/hold/", 403, who="controller", form={}, csrf="sent"),
    Http(NEW_CALL, "control: a supervisor who may place calls, with the CSRF token", "POST",
         "/calls/new/room/", 302, who="placer", form={"room_id": "room-1"}, csrf="sent",
         location="/"),
    Http(NEW_CALL, "anonymous", "POST", "/calls/new/place/", 302, form={}, location=LOGIN_AT),
    Http(NEW_CALL, "logged in, not a supervisor", "POST", "/calls/new/place/", 403,
         who="outsider", form={}),
    Http(NEW_CALL, "a supervisor without the place-calls permission", "POST",
         "/calls/new/place/", 403, who="controller", form={"address": "+15550100"},
         csrf="sent"),
    Http(NEW_CALL, "cross-site form post (no CSRF token)", "POST", "/calls/new/room/", 403,
         who="placer", form={"room_id": "room-1"}, csrf="missing"),
    Http(NEW_CALL, "GET (a link or an image tag)", "GET", "/calls/new/room/", 405,
         who="placer"),
    # --- Supervisor sockets -----------------------------------------------------------------
    Socket(WALL_WS, "control: a supervisor from the site's own page", "/ws/dashboard/", True,
           who="team", shows=("team-call",), hides=("other-call",)),
    Socket(WALL_WS, "anonymous", "/ws/dashboard/", False),
    Socket(WALL_WS, "forged session cookie", "/ws/dashboard/", False, who="forged"),
    Socket(WALL_WS, "session of a deactivated supervisor", "/ws/dashboard/", False,
           who="inactive"),
    Socket(WALL_WS, "session from before a password change", "/ws/dashboard/", False,
           who="stale"),
    Socket(WALL_WS, "logged in, not a supervisor", "/ws/dashboard/", False, who="outsider"),
    Socket(WALL_WS, "valid session, cross-site Origin (CSWSH)", "/ws/dashboard/", False,
           who="team", origin="https://evil.example"),
    Socket(WALL_WS, "valid session, look-alike Origin", "/ws/dashboard/", False, who="team",
           origin="http://localhost.evil.example"),
    Socket(WALL_WS, "valid session, Origin: null (sandboxed frame)", "/ws/dashboard/", False,
           who="team", origin="null"),
    Socket(WALL_WS, "valid session, no Origin", "/ws/dashboard/", False, who="team",
           origin=None),
    Socket(LISTEN_WS, "control: a supervisor granted listening, their team's live call",
           "/ws/dashboard/calls/{team_live_call}/listen/", True, who="listener",
           shows=("listen.started",)),
    Socket(LISTEN_WS, "a supervisor not granted listening",
           "/ws/dashboard/calls/{team_live_call}/listen/", False, who="team"),
    Socket(LISTEN_WS, "anonymous", "/ws/dashboard/calls/{team_live_call}/listen/", False),
    Socket(LISTEN_WS, "granted listening, another team's call",
           "/ws/dashboard/calls/{other_call}/listen/", False, who="listener"),
    Socket(LISTEN_WS, "granted listening, cross-site Origin (CSWSH)",
           "/ws/dashboard/calls/{team_live_call}/listen/", False, who="listener",
           origin="https://evil.example"),
    Socket(LISTEN_WS, "the ACS shared secret instead of a session",
           f"/ws/dashboard/calls/{{team_live_call}}/listen/?token={SECRET}", False),
    Socket(CALL_WS, "control: a supervisor, their team's call", "/ws/dashboard/calls/{team_call}/",
           True, who="team", shows=("team-call",)),
    Socket(CALL_WS, "anonymous", "/ws/dashboard/calls/{team_call}/", False),
    Socket(CALL_WS, "logged in, not a supervisor", "/ws/dashboard/calls/{team_call}/", False,
           who="outsider"),
    Socket(CALL_WS, "another team's call", "/ws/dashboard/calls/{other_call}/", False,
           who="team"),
    Socket(CALL_WS, "a call that does not exist", "/ws/dashboard/calls/987654321/", False,
           who="team"),
    Socket(CALL_WS, "valid session, cross-site Origin (CSWSH)",
           "/ws/dashboard/calls/{team_call}/", False, who="team", origin="https://evil.example"),
    Socket(CALL_WS, "valid session, no Origin", "/ws/dashboard/calls/{team_call}/", False,
           who="team", origin=None),
    Socket(CALL_WS, "the ACS shared secret instead of a session",
           f"/ws/dashboard/calls/{{team_call}}/?token={SECRET}", False),
    # --- REST API ----------------------------------------------------------------------------
    Http(API, "control: a supervisor's token lists their team's calls", "GET", "/api/calls/",
         200, headers={"Authorization": "Token {token_team}"}, shows=("team-call",),
         hides=("other-call",)),
    Http(API, "control: a supervisor's session", "GET", "/api/calls/{team_call}/", 200,
         who="team"),
    Http(API, "control: their call's utterances", "GET", "/api/calls/{team_call}/utterances/",
         200, headers={"Authorization": "Token {token_team}"}, shows=("charged twice",)),
    Http(API, "control: their call's transcript", "GET", "/api/calls/{team_call}/transcript/",
         200, headers={"Authorization": "Token {token_team}"}, shows=("charged twice",)),
    Http(API, "control: their call's transcript file", "GET",
         "/api/calls/{team_call}/transcript.txt", 200,
         headers={"Authorization": "Token {token_team}"}, shows=("charged twice",)),
    Http(API, "control: their call's recordings", "GET", "/api/calls/{team_call}/recordings/",
         200, headers={"Authorization": "Token {token_team}"}, shows=("mixed",)),
    Http(API, "control: their call's recording, a byte range", "GET",
         "/api/calls/{team_call}/recordings/{team_recording}.flac", 206,
         headers={"Authorization": "Token {token_team}", "Range": "bytes=0-3"},
         shows=("fLaC",)),
    Http(API, "control: the schema, with a token", "GET", "/api/schema/", 200,
         headers={"Authorization": "Token {token_team}"}, shows=("openapi",)),
    Http(API, "no credentials", "GET", "/api/calls/", 401, shows=("credentials",)),
    Http(API, "wrong token", "GET", "/api/calls/", 401,
         headers={"Authorization": "Token 0123456789abcdef0123456789abcdef01234567"}),
    Http(API, "token keyword without a key", "GET", "/api/calls/", 401,
         headers={"Authorization": "Token"}),
    Http(API, "a real key under another scheme (Bearer)", "GET", "/api/calls/", 401,
         headers={"Authorization": "Bearer {token_team}"}),
    Http(API, "the token of a deactivated supervisor", "GET", "/api/calls/", 401,
         headers={"Authorization": "Token {token_inactive}"}),
    Http(API, "forged session cookie", "GET", "/api/calls/", 401, who="forged"),
    Http(API, "token of a user who is not a supervisor", "GET", "/api/calls/", 403,
         headers={"Authorization": "Token {token_outsider}"}),
    Http(API, "another team's call", "GET", "/api/calls/{other_call}/", 404,
         headers={"Authorization": "Token {token_team}"}, hides=("other-call",)),
    Http(API, "another team's utterances", "GET", "/api/calls/{other_call}/utterances/", 404,
         headers={"Authorization": "Token {token_team}"}, hides=("cancel",)),
    Http(API, "another team's transcript", "GET", "/api/calls/{other_call}/transcript/", 404,
         headers={"Authorization": "Token {token_team}"}, hides=("cancel",)),
    Http(API, "another team's transcript file", "GET", "/api/calls/{other_call}/transcript.txt",
         404, headers={"Authorization": "Token {token_team}"}, hides=("cancel",)),
    Http(API, "another team's recordings", "GET", "/api/calls/{other_call}/recordings/", 404,
         headers={"Authorization": "Token {token_team}"}, hides=("mixed",)),
    Http(API, "another team's recording", "GET",
         "/api/calls/{other_call}/recordings/{other_recording}.flac", 404,
         headers={"Authorization": "Token {token_team}"}, hides=("fLaC",)),
    Http(API, "another team's recording under their own call's id", "GET",
         "/api/calls/{team_call}/recordings/{other_recording}.flac", 404,
         headers={"Authorization": "Token {token_team}"}, hides=("fLaC",)),
    Http(API, "a recording, anonymous", "GET",
         "/api/calls/{team_call}/recordings/{team_recording}.flac", 401, hides=("fLaC",)),
    Http(API, "the schema, anonymous", "GET", "/api/schema/", 401),
    Http(API, "unsafe method with a session and no CSRF token", "POST", "/api/calls/", 403,
         who="team", csrf="missing", form={}, shows=("CSRF",)),
    Http(API, "unsafe method with a token (the API is read-only)", "DELETE",
         "/api/calls/{team_call}/", 405, headers={"Authorization": "Token {token_team}"}),
    Http(API, "an unknown URL, anonymous", "GET", "/api/nothing-here/", 404),
    Http(API, "control: the alerts of a supervisor's team", "GET", "/api/alerts/", 200,
         headers={"Authorization": "Token {token_team}"}, shows=("team-alert",),
         hides=("other-alert",)),
    Http(API, "the alerts, anonymous", "GET", "/api/alerts/", 401),
    Http(API, "control: a token acknowledges its team's alert", "POST",
         "/api/alerts/{team_alert}/acknowledge/", 200, form={},
         headers={"Authorization": "Token {token_team}"}, shows=("acknowledged",)),
    Http(API, "a token acknowledging another team's alert", "POST",
         "/api/alerts/{other_alert}/acknowledge/", 404, form={},
         headers={"Authorization": "Token {token_team}"}),
    Http(API, "acknowledging an alert, anonymous", "POST",
         "/api/alerts/{team_alert}/acknowledge/", 401, form={}),
    Http(API, "acknowledging an alert with a session and no CSRF token", "POST",
         "/api/alerts/{team_alert}/acknowledge/", 403, who="team", csrf="missing", form={},
         shows=("CSRF",)),
    Http(API, "control: the agents report, with a token", "GET", "/api/reports/agents/", 200,
         headers={"Authorization": "Token {token_team}"}),
    Http(API, "the agents report, anonymous", "GET", "/api/reports/agents/", 401),
    Http(API, "control: the API's docs page, a supervisor", "GET", "/api/docs/", 200,
         who="team"),
    Http(API, "the API's docs page, anonymous", "GET", "/api/docs/", 401),
    # --- Reports and alert triage -------------------------------------------------------------
    Http(HISTORY, "control: the reports page, a supervisor", "GET", "/reports/", 200,
         who="team"),
    Http(HISTORY, "the reports page, anonymous", "GET", "/reports/", 302, location=LOGIN_AT),
    Http(HISTORY, "control: the agents page, a supervisor", "GET", "/agents/", 200, who="team"),
    Http(HISTORY, "the agents page, anonymous", "GET", "/agents/", 302, location=LOGIN_AT),
    Http(HISTORY, "the agents page, logged in, not a supervisor", "GET", "/agents/", 403,
         who="outsider"),
    Http(HISTORY, "control: the agents report as CSV, a supervisor", "GET",
         "/reports/agents.csv", 200, who="team"),
    Http(HISTORY, "the agents report as CSV, anonymous", "GET", "/reports/agents.csv", 302,
         location=LOGIN_AT),
    Http(CALL_PAGE, "control: a supervisor acknowledges their team's alert", "POST",
         "/alerts/{team_alert}/acknowledge/", 200, who="team", form={},
         headers={"Accept": "application/json"}),
    Http(CALL_PAGE, "acknowledging another team's alert", "POST",
         "/alerts/{other_alert}/acknowledge/", 404, who="team", form={},
         headers={"Accept": "application/json"}),
    Http(CALL_PAGE, "acknowledging an alert, anonymous", "POST",
         "/alerts/{team_alert}/acknowledge/", 302, form={}, location=LOGIN_AT),
    # --- Admin -------------------------------------------------------------------------------
    Http(ADMIN, "control: a superuser", "GET", "/admin/", 200, who="admin"),
    Http(ADMIN, "control: staff-flagged supervisor, their team's call", "GET",
         "/admin/streaming/call/{team_call}/change/", 200, who="staff_flag",
         shows=("team-call",)),
    Http(ADMIN, "anonymous", "GET", "/admin/", 302, location="/admin/login/?next=/admin/"),
    Http(ADMIN, "anonymous, a call list", "GET", "/admin/streaming/call/", 302,
         location="/admin/login/"),
    Http(ADMIN, "logged in, not staff", "GET", "/admin/", 302, who="outsider",
         location="/admin/login/"),
    Http(ADMIN, "a supervisor without admin rights", "GET", "/admin/streaming/call/", 302,
         who="team", location="/admin/login/"),
    Http(ADMIN, "staff flag without permissions: the call list", "GET",
         "/admin/streaming/call/", 403, who="staff_no_perms"),
    Http(ADMIN, "staff-flagged supervisor: another team's call", "GET",
         "/admin/streaming/call/{other_call}/change/", 302, who="staff_flag",
         location="/admin/", hides=("other-call",)),
    Http(ADMIN, "login form posted cross-site (no CSRF token)", "POST", "/admin/login/", 403,
         form={"username": "root", "password": PASSWORD}, csrf="missing"),
    # --- Login and logout --------------------------------------------------------------------
    Http(LOGIN, "control: the form is public", "GET", "/accounts/login/", 200,
         shows=("csrfmiddlewaretoken",)),
    Http(LOGIN, "control: the right password", "POST", "/accounts/login/", 302,
         form=LOGIN_FORM, csrf="sent", location="/"),
    Http(LOGIN, "wrong password", "POST", "/accounts/login/", 200,
         form={**LOGIN_FORM, "password": "wrong-password-123"}, csrf="sent",
         shows=("didn't match",)),
    Http(LOGIN, "login CSRF (no token)", "POST", "/accounts/login/", 403, form=LOGIN_FORM,
         csrf="missing"),
    Http(LOGOUT, "control: a supervisor logs out", "POST", "/accounts/logout/", 302,
         who="team", form={}, csrf="sent", location="/accounts/login/"),
    Http(LOGOUT, "logout CSRF (no token)", "POST", "/accounts/logout/", 403, who="team",
         form={}, csrf="missing"),
    Http(LOGOUT, "GET (a link or an image tag)", "GET", "/accounts/logout/", 405, who="team"),
    # --- Operations --------------------------------------------------------------------------
    Http(METRICS, "control: loopback, straight to the worker", "GET", "/metrics", 200,
         remote="127.0.0.1", shows=("callsite_ingest_frames_total",)),
    Http(METRICS, "control: the metrics token", "GET", "/metrics", 200,
         headers={"Authorization": "Bearer {metrics_token}"}),
    Http(METRICS, "remote, no token", "GET", "/metrics", 403, hides=("callsite_ingest",)),
    Http(METRICS, "remote, wrong token", "GET", "/metrics", 403,
         headers={"Authorization": "Bearer not-the-metrics-token-0123"}),
    Http(METRICS, "remote, the token in the query string", "GET", "/metrics?token={metrics_token}",
         403),
    Http(METRICS, "remote, a supervisor's session", "GET", "/metrics", 403, who="admin"),
    Http(METRICS, "through nginx with a forged X-Forwarded-For: 127.0.0.1", "GET", "/metrics",
         403, remote="127.0.0.1",
         headers={"X-Forwarded-For": "127.0.0.1, 198.51.100.7"}, hides=("callsite_ingest",)),
    Http(METRICS, "relayed by a proxy (Forwarded header)", "GET", "/metrics", 403,
         remote="127.0.0.1", headers={"Forwarded": "for=198.51.100.7"}),
    Http(HEALTHZ, "control: public, says nothing more than ok", "GET", "/healthz", 200,
         shows=('{{"status": "ok"}}',), hides=("checks", "error")),
    Http(READYZ, "control: public, names no host or error", "GET", "/readyz", 200,
         shows=('"ready"',), hides=("error", "127.0.0.1", "postgres", "redis://")),
]  # fmt: skip

HTTP_ROWS = [row for row in TABLE if isinstance(row, Http)]
SOCKET_ROWS = [row for row in TABLE if isinstance(row, Socket)]


def _id(row: Http | Socket) -> str:
    return f"{row.entry} | {row.attack}"


# --- the world the table runs in ----------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _acs_tokens(key: SigningKey) -> dict[str, str]:
    """A valid ACS token and one for each attack in JWT_ATTACKS."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 300}
    valid = key.sign()
    header, _, signature = valid.split(".")
    tampered = {**claims, "aud": "another-resource"}
    hs256_header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    hs256_payload = _b64(json.dumps(claims).encode())
    hs256_mac = hmac.new(
        key.jwk()["n"].encode(), f"{hs256_header}.{hs256_payload}".encode(), hashlib.sha256
    ).digest()
    return {
        "jwt_valid": valid,
        "jwt_expired": key.sign({"iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}),
        "jwt_wrong_audience": key.sign({"aud": "99999999-0000-0000-0000-000000000000"}),
        "jwt_wrong_issuer": key.sign({"iss": "https://acs.evil.example"}),
        "jwt_forged": SigningKey(kid=key.kid).sign(),
        "jwt_unknown_key": SigningKey().sign(),
        "jwt_none": jwt.encode(claims, "", algorithm="none", headers={"kid": key.kid}),
        "jwt_hs256": f"{hs256_header}.{hs256_payload}.{_b64(hs256_mac)}",
        "jwt_tampered": f"{header}.{_b64(json.dumps(tampered).encode())}.{signature}",
        "jwt_future": key.sign({"iat": now + 3600, "nbf": now + 3600, "exp": now + 7200}),
        "jwt_no_expiry": key.sign({"exp": None}),
        "jwt_garbage": "not.a.jwt",
    }


@dataclass
class World:
    """Users with their sessions, calls of two teams, and every credential the table names."""

    values: dict[str, str]
    sessions: dict[str, str]


@pytest.fixture(scope="module")
def acs_key() -> SigningKey:
    """ACS's signing key (one per module: RSA key generation is slow)."""
    return SigningKey(kid="acs-security-key")


@pytest.fixture
def world(db: Any, tmp_path: Path, acs_key: SigningKey) -> Iterator[World]:
    clear_cache()  # API throttle counts
    team = Team.objects.create(name="Support")
    TeamAddress.objects.create(team=team, address=TEAM_LINE)

    def member(
        name: str,
        *,
        is_staff: bool = False,
        control: bool = False,
        place: bool = False,
        listen: bool = False,
    ) -> User:
        user = user_in(name, SUPERVISORS_GROUP)
        user.set_password(PASSWORD)
        user.is_staff = is_staff
        user.save()
        if control:
            user.user_permissions.add(Permission.objects.get(codename="control_call"))
        if place:
            user.user_permissions.add(Permission.objects.get(codename="place_calls"))
        if listen:
            user.user_permissions.add(Permission.objects.get(codename="listen_call"))
        team.members.add(user)
        return user

    users = {
        "team": member("teamsup"),
        "controller": member("controller", control=True),
        "listener": member("listener", listen=True),
        "placer": member("placer", place=True),
        "staff_flag": member("teamadmin", is_staff=True),
        "inactive": member("leaver"),
        "stale": member("stale"),
        "outsider": User.objects.create_user("outsider", password=PASSWORD),
        "staff_no_perms": User.objects.create_user("clerk", password=PASSWORD, is_staff=True),
        "admin": User.objects.create_superuser("root", password=PASSWORD),
    }
    sessions = {who: session_cookie(user).split("=", 1)[1] for who, user in users.items()}
    sessions["forged"] = "f" * 32
    users["inactive"].is_active = False
    users["inactive"].save()
    users["stale"].set_password("changed-password-456")
    users["stale"].save()

    team_call = make_call("team-call", said=CONVERSATION)
    other_call = make_call(
        "other-call",
        line=OTHER_LINE,
        said=[Said(f"4:{OTHER_LINE}", "Please cancel my subscription.", 1.0)],
    )
    managed = Call.objects.create(
        managed=True, callback_id=uuid.uuid4(), state=CallState.RINGING, caller=f"4:{TEAM_LINE}"
    )
    alerts = {
        name: Alert.objects.create(
            call_id=call, kind="keyword", message=f"Keyword: {name}-alert", at_ms=1000,
            episode=f"security-{name}",
        ).pk
        for name, call in (("team", team_call), ("other", other_call))
    }  # fmt: skip
    team_live_call = make_call("team-live-call", said=[], ended=False)
    recordings = {
        name: make_recording(call, {"": [1000, -1000] * 800})
        for name, call in (("team", team_call), ("other", other_call))
    }
    jwks_file = tmp_path / "acs-keys.json"
    jwks_file.write_text(json.dumps(jwks(acs_key)))
    values = {
        "team_call": str(team_call),
        "other_call": str(other_call),
        "team_alert": str(alerts["team"]),
        "other_alert": str(alerts["other"]),
        "team_live_call": str(team_live_call),
        "team_recording": str(recordings["team"]),
        "other_recording": str(recordings["other"]),
        "callback": str(managed.callback_id),
        "metrics_token": METRICS_TOKEN,
        "jwks_file": str(jwks_file),
        "token_team": Token.objects.create(user=users["team"]).key,
        "token_outsider": Token.objects.create(user=users["outsider"]).key,
        "token_inactive": Token.objects.create(user=users["inactive"]).key,
        **_acs_tokens(acs_key),
    }
    tokens._verifier_for.cache_clear()
    yield World(values=values, sessions=sessions)
    tokens._verifier_for.cache_clear()
    clear_cache()


def _configure(settings: Any, row: Http | Socket, world: World) -> None:
    settings.CALLSITE_METRICS_TOKEN = METRICS_TOKEN
    settings.DEBUG = False
    settings.CALLSITE_ACS_RESOURCE_ID = ""
    settings.CALLSITE_ACS_JWKS_FILE = ""
    if row.acs == "jwt":
        settings.CALLSITE_ACS_RESOURCE_ID = AUDIENCE
        settings.CALLSITE_ACS_JWKS_FILE = world.values["jwks_file"]
    elif row.acs == "none":
        settings.CALLSITE_ACS_SHARED_SECRET = ""
    else:
        assert row.acs == "secret"
        assert settings.CALLSITE_ACS_SHARED_SECRET == SECRET


def calls_state() -> tuple[Any, ...]:
    """Everything a request from ACS or a supervisor could change about calls."""
    return (
        sorted(
            Call.objects.values_list(
                "pk", "state", "media_state", "transcription_state", "connection_id"
            )
        ),
        CallEvent.objects.count(),
        Participant.objects.count(),
        Utterance.objects.count(),
    )


# --- the table's tests --------------------------------------------------------------------------


@pytest.mark.parametrize("row", HTTP_ROWS, ids=_id)
def test_http_entry_point(row: Http, world: World, settings: Any) -> None:
    _configure(settings, row, world)
    values = world.values
    client = Client(enforce_csrf_checks=row.csrf != "off")
    if row.who is not None:
        client.cookies[django_settings.SESSION_COOKIE_NAME] = world.sessions[row.who]
    path = row.path.format_map(values)
    headers = {name: value.format_map(values) for name, value in row.headers.items()}
    request: dict[str, Any] = {"headers": headers, "REMOTE_ADDR": row.remote}
    if row.form is not None:
        form = dict(row.form)
        if row.csrf == "sent":
            client.get("/accounts/login/")  # sets the CSRF cookie, as any page would
            form["csrfmiddlewaretoken"] = client.cookies[django_settings.CSRF_COOKIE_NAME].value
        request["data"] = form
    elif row.body is not None:
        request.update(data=BODIES[row.body], content_type="application/json")
    before = calls_state()

    response = getattr(client, row.method.lower())(path, **request)

    body = b"".join(response) if response.streaming else response.content
    text = body.decode(errors="replace")
    assert response.status_code == row.status, text[:500]
    if row.location is not None:
        assert response["Location"].startswith(row.location), response["Location"]
    for shown in row.shows:
        assert shown.format_map(values) in text
    for hidden in row.hides:
        assert hidden.format_map(values) not in text
    if not row.control:
        assert calls_state() == before


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("row", SOCKET_ROWS, ids=_id)
async def test_socket_entry_point(row: Socket, world: World, settings: Any) -> None:
    _configure(settings, row, world)
    values = world.values
    headers: list[tuple[bytes, bytes]] = []
    if row.who is not None:
        cookie = f"{django_settings.SESSION_COOKIE_NAME}={world.sessions[row.who]}"
        headers.append((b"cookie", cookie.encode()))
    if row.origin is not None:
        headers.append((b"origin", row.origin.encode()))
    for name, value in row.headers.items():
        headers.append((name.encode(), value.format_map(values).encode()))
    before = await database_sync_to_async(calls_state)()
    communicator = WebsocketCommunicator(application, row.path.format_map(values), headers)

    connected, _ = await communicator.connect(timeout=5)

    try:
        assert connected is row.accepted
        if connected and (row.shows or row.hides):
            first = await communicator.receive_from(timeout=5)
            for shown in row.shows:
                assert shown.format_map(values) in first
            for hidden in row.hides:
                assert hidden.format_map(values) not in first
    finally:
        if connected:
            await communicator.disconnect()
    if not row.control:
        assert await database_sync_to_async(calls_state)() == before


def _url_routes(patterns: list[Any], prefix: str = "") -> Iterator[str]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern).removeprefix("^")
        if route.startswith("admin/"):
            yield "admin/"  # the admin's own pages, behind one login
        elif isinstance(pattern, URLResolver):
            yield from _url_routes(pattern.url_patterns, route)
        else:
            assert isinstance(pattern, URLPattern)
            yield route


def _row_route(row: Http | Socket) -> str:
    path = row.path.split("?")[0].format(
        team_call=1, other_call=2, team_alert=1, other_alert=2, callback=uuid.UUID(int=1),
        team_recording=1, other_recording=2, team_live_call=3,
    )  # fmt: skip
    if isinstance(row, Socket):
        for pattern in [*streaming_routes, *dashboard_routes]:
            if pattern.pattern.match(path.lstrip("/")):
                return str(pattern.pattern)
        raise AssertionError(f"no socket route for {path}")
    route = resolve(path).route.removeprefix("^")
    return "admin/" if route.startswith("admin/") else route


def test_every_route_is_in_the_table() -> None:
    """Each URL and socket route has a refusal row (public ones: a row saying what they show),
    and a control row proving the legitimate request works."""
    routes = set(_url_routes(get_resolver().url_patterns))
    routes |= {str(p.pattern) for p in [*streaming_routes, *dashboard_routes]}
    refused = {_row_route(row) for row in TABLE if not row.control}
    controlled = {_row_route(row) for row in TABLE if row.control}
    public = {"healthz", "readyz"}  # nothing to refuse: their rows check what they tell
    assert routes - refused - public == set()
    assert routes - controlled - {"api/"} == set()  # the API's catch-all: 404 for everyone


# --- size limits --------------------------------------------------------------------------------


def test_size_limits_suit_event_grid() -> None:
    """An Event Grid delivery (at most 1 MB) fits, and a body Callsite accepts stays in
    memory; Django's defaults (2.5 MB, 1000 fields) are not left to chance."""
    limit = django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert 1024 * 1024 < limit <= 4 * 1024 * 1024
    assert limit == django_settings.FILE_UPLOAD_MAX_MEMORY_SIZE
    assert django_settings.DATA_UPLOAD_MAX_NUMBER_FIELDS == 1000


def _body_of(size: int) -> bytes:
    """A well-formed Event Grid array of exactly ``size`` bytes (one event of an ignored type)."""

    def event(pad: str) -> dict[str, Any]:
        return {"id": "big", "eventType": "Microsoft.Communication.Padding", "data": {"pad": pad}}

    empty = len(json.dumps([event("")]))
    body = json.dumps([event("x" * (size - empty))]).encode()
    assert len(body) == size
    return body


def _oversized_body() -> bytes:
    return _body_of(django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)


@pytest.mark.django_db
def test_a_webhook_body_at_the_limit_is_taken() -> None:
    """The limit is where it says: a body of exactly DATA_UPLOAD_MAX_MEMORY_SIZE bytes is read."""
    body = _body_of(django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    response = Client().post(
        f"/acs/events/?token={SECRET}", data=body, content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json() == {"outcomes": ["ignored"]}


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/acs/events/", "/acs/callbacks/{callback}/"])
def test_an_oversized_webhook_is_refused_not_crashed(path: str) -> None:
    """One byte over DATA_UPLOAD_MAX_MEMORY_SIZE: 400 or 413 (Event Grid retries neither),
    no 500, nothing stored."""
    managed = Call.objects.create(managed=True, callback_id=uuid.uuid4())
    url = path.format(callback=managed.callback_id) + f"?token={SECRET}"
    before = calls_state()
    response = Client().post(url, data=_oversized_body(), content_type="application/json")
    assert response.status_code in (400, 413)
    assert calls_state() == before


@pytest.mark.django_db(transaction=True)
async def test_an_oversized_webhook_through_the_asgi_application() -> None:
    """The same through ``callsite.asgi.application`` (the body arrives in chunks, as Daphne
    passes it): 400, and the application finishes the request."""
    from asgiref.testing import ApplicationCommunicator

    body = _oversized_body()
    chunk = 64 * 1024
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/acs/events/",
        "query_string": f"token={SECRET}".encode(),
        "headers": [
            (b"host", b"localhost"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": (REMOTE, 50000),
        "server": ("127.0.0.1", 8000),
    }
    communicator = ApplicationCommunicator(application, scope)
    for start in range(0, len(body), chunk):
        more = start + chunk < len(body)
        await communicator.send_input(
            {"type": "http.request", "body": body[start : start + chunk], "more_body": more}
        )
    response = await communicator.receive_output(10)
    assert response["type"] == "http.response.start"
    assert response["status"] in (400, 413)
    while (await communicator.receive_output(10)).get("more_body"):
        pass
    await communicator.wait(10)
    assert not await Call.objects.aexists()


@pytest.mark.django_db
def test_a_full_size_event_grid_batch_is_accepted() -> None:
    """A 1 MiB batch of the largest size Event Grid sends (100 events, Callsite's own cap) is
    read and answered, not refused for its size."""
    events = [
        {
            "id": f"event-{n}",
            "eventType": "Microsoft.Communication.RecordingFileStatusUpdated",
            "data": {"pad": "x" * 10_400},
        }
        for n in range(100)
    ]
    body = json.dumps(events)
    assert len(body) > 1024 * 1024
    response = Client().post(
        f"/acs/events/?token={SECRET}", data=body, content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json() == {"outcomes": ["ignored"] * 100}


@pytest.mark.django_db
def test_too_many_fields_are_refused_not_crashed(world: World) -> None:
    """More query parameters or form fields than DATA_UPLOAD_MAX_NUMBER_FIELDS: 400."""
    client = Client()
    client.cookies[django_settings.SESSION_COOKIE_NAME] = world.sessions["team"]
    limit = django_settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    query = "&".join(f"f{n}=1" for n in range(limit + 1))
    assert client.get(f"/history/?{query}").status_code == 400
    form = {f"f{n}": "1" for n in range(limit + 1)}
    assert Client().post("/accounts/login/", data=form).status_code == 400


# --- /metrics behind a real proxy-header parser -------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http_get(port: int, path: str, headers: dict[str, str]) -> tuple[int, str]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


@pytest.fixture
def proxied_worker(tmp_path: Path) -> Iterator[int]:
    """Daphne with ``--proxy-headers``, as ``manage.py serve`` runs workers behind nginx."""
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CALLSITE_METRICS_TOKEN": METRICS_TOKEN,
        "CALLSITE_GC_FREEZE": "0",
    }
    log = tmp_path / "daphne.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "--proxy-headers", "-b", "127.0.0.1", "-p",
             str(port), "callsite.asgi:application"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                with socket.create_connection(("127.0.0.1", port), 0.2):
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.live_server
def test_metrics_through_a_proxy_are_not_loopback(proxied_worker: int) -> None:
    """nginx appends the client's address to the X-Forwarded-For the client sent, and Daphne
    takes the first entry as the client: "127.0.0.1, <client>" makes a remote client look
    local. Relayed requests need the token; the worker's own port answers loopback."""
    port = proxied_worker
    assert _http_get(port, "/metrics", {})[0] == 200  # a scraper on the machine
    spoofed = {"X-Forwarded-For": "127.0.0.1, 198.51.100.7", "X-Forwarded-Proto": "https"}
    status, body = _http_get(port, "/metrics", spoofed)
    assert status == 403
    assert "callsite_ingest" not in body
    assert _http_get(port, "/metrics", {"X-Forwarded-For": "198.51.100.7"})[0] == 403
    with_token = {**spoofed, "Authorization": f"Bearer {METRICS_TOKEN}"}
    assert _http_get(port, "/metrics", with_token)[0] == 200


# --- what /readyz tells whom --------------------------------------------------------------------


@pytest.mark.django_db
def test_readyz_tells_what_failed_only_to_operators(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """A failing check is 503 for everyone; the error (internal host names, ports, users) is
    given to loopback and the metrics token only."""
    from callsite import health

    async def unreachable() -> None:
        raise ConnectionError("redis.internal.example:6379 refused the connection")

    monkeypatch.setattr(health, "_channel_layer", unreachable)
    settings.CALLSITE_METRICS_TOKEN = METRICS_TOKEN
    client = Client()

    public = client.get("/readyz", REMOTE_ADDR=REMOTE)
    assert public.status_code == 503
    assert public.json() == {
        "status": "unavailable",
        "checks": {
            "database": {"ok": True},
            "channel_layer": {"ok": False},
            "capacity": {"ok": True},
        },
    }
    relayed = client.get("/readyz", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert "redis.internal" not in relayed.content.decode()

    for operator in (
        client.get("/readyz", REMOTE_ADDR="127.0.0.1"),
        client.get("/readyz", REMOTE_ADDR=REMOTE, HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}"),
    ):
        assert operator.status_code == 503
        error = operator.json()["checks"]["channel_layer"]["error"]
        assert error == "ConnectionError: redis.internal.example:6379 refused the connection"
