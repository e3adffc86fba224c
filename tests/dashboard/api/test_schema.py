"""The OpenAPI schema, and Schemathesis checking the API against it in-process.

Schemathesis loads /api/schema/ from the WSGI application and, for every operation, sends
requests generated from the schema (valid and invalid values for every parameter),
authenticated with a Staff user's token, against a database holding real calls. Each response
must not be a server error, must have a documented status code and content type, and its body
must match the documented schema; and the same request without the token must be refused.

Each operation's cases come from ``APIOperation.as_strategy`` under Hypothesis's ``@given``
(derandomized, so every run sends the same requests): Schemathesis's ``from_fixture`` loader,
which would load the schema inside a test, fails under pytest 9.

Requests go through ``WSGIHandler`` in this thread, on the test's connection and inside its
transaction, so the data needs no commit and the run is the same on SQLite and PostgreSQL.
Like Django's test client, the fixture keeps ``close_old_connections`` from closing that
connection at the end of each request.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import yaml
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck, given, settings
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from dashboard.permissions import STAFF_GROUP, SUPERVISORS_GROUP
from streaming.models import Alert
from tests.dashboard.api.conftest import AGENT, CONVERSATION, OTHER_LINE, Said, make_call, user_in
from tests.factories import make_recording

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    ignored_auth,
]

OPERATIONS = {
    ("GET", "/api/calls/"),
    ("GET", "/api/calls/{id}/"),
    ("GET", "/api/calls/{id}/utterances/"),
    ("GET", "/api/calls/{id}/transcript/"),
    ("GET", "/api/calls/{id}/transcript.{fmt}"),
    ("GET", "/api/calls/{id}/recordings/"),
    ("GET", "/api/calls/{id}/recordings/{recording_id}.flac"),
    ("GET", "/api/alerts/"),
    ("POST", "/api/alerts/{id}/{step}/"),
    ("GET", "/api/reports/agents/"),
}


def test_the_schema_describes_every_endpoint(staff_api: Client) -> None:
    response = staff_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    found = {(method.upper(), path) for path, item in schema["paths"].items() for method in item}
    assert found == OPERATIONS
    listing = schema["paths"]["/api/calls/"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {
        "state",
        "started_after",
        "started_before",
        "participant",
        "agent",
        "has_alerts",
        "sentiment",
        "ended_negative",
        "q",
        "page",
        "page_size",
    }
    transcript = schema["paths"]["/api/calls/{id}/transcript/"]["get"]["responses"]
    assert set(transcript["200"]["content"]) == {
        "application/json",
        "text/plain",
        "text/csv",
        "application/x-subrip",
        "text/vtt",
    }
    assert set(schema["components"]["securitySchemes"]) == {"tokenAuth", "cookieAuth"}


def test_the_schema_is_also_served_as_json(staff_api: Client) -> None:
    response = staff_api.get("/api/schema/?format=json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "Callsite API"


def test_the_schema_is_valid_openapi_and_generated_without_warnings() -> None:
    GENERATOR_STATS.reset()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert not GENERATOR_STATS, "drf-spectacular warned (run manage.py spectacular --validate)"
    validate_schema(schema)


@pytest.fixture
def wsgi_app() -> Iterator[WSGIHandler]:
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def api_data(db: None, settings: Any) -> dict[str, Any]:
    """A Staff user's token, and calls with utterances, alerts and analytics to read."""
    settings.CALLSITE_API_RATE = "1000000/min"  # a run sends hundreds of requests
    token = Token.objects.create(user=user_in("st-staff", SUPERVISORS_GROUP, STAFF_GROUP))
    call = make_call(
        "fuzzed",
        said=[*CONVERSATION, Said(AGENT, "Ünïcödé & <b>markup</b> -->", 12.0)],
        alerts=2,
        agent_ratio=0.6,
    )
    make_call("fuzzed-live", line=OTHER_LINE, ended=False)
    recording = make_recording(call, {AGENT: [300, -300] * 4000})
    alert = Alert.objects.filter(call_id=call).values_list("pk", flat=True).first()
    return {"token": token.key, "call": call, "recording": recording, "alert": alert}


@pytest.fixture
def api_schema(wsgi_app: WSGIHandler, api_data: dict[str, Any]) -> Any:
    """The schema as /api/schema/ serves it, bound to the application for in-process calls."""
    return schemathesis.openapi.from_wsgi(
        "/api/schema/", wsgi_app, headers={"Authorization": f"Token {api_data['token']}"}
    )


HYPOTHESIS = settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

CASES = [
    # "stored" pins {id} to a stored call, so the other parameters are exercised on real
    # data; "any" generates the id too (nearly always a 404). Each with valid values
    # (positive) and invalid ones (negative), except where no parameter is left to spoil.
    pytest.param(label, ids, mode, id=f"{label}-{ids}-{mode.value}")
    for label in sorted(f"{method} {path}" for method, path in OPERATIONS)
    for ids in (("stored", "any") if "{id}" in label else ("stored",))
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if (label, ids, mode) != ("GET /api/calls/{id}/", "stored", GenerationMode.NEGATIVE)
]


@pytest.mark.parametrize(("label", "ids", "mode"), CASES)
def test_the_api_keeps_to_its_schema(
    api_schema: Any, api_data: dict[str, Any], label: str, ids: str, mode: GenerationMode
) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, label
    pinned = {"id": api_data["call"]} if ids == "stored" and "{id}" in label else None
    if pinned is not None and label.startswith("POST /api/alerts/"):
        pinned["id"] = api_data["alert"]  # a stored alert, not a call
    if pinned is not None and "{recording_id}" in label:
        pinned["recording_id"] = api_data["recording"]
    # Fixed, so that generation does not replace the token with made-up credentials.
    auth = {"Authorization": f"Token {api_data['token']}"}
    statuses: Counter[int] = Counter()

    @given(case=operation.as_strategy(mode, path_parameters=pinned, headers=auth))
    @HYPOTHESIS
    def conforms(case: Any) -> None:
        response = case.call_and_validate(checks=CHECKS)
        statuses[response.status_code] += 1

    conforms()
    assert not statuses.keys() & {401, 403}, statuses
    if ids == "stored" and mode is GenerationMode.POSITIVE:
        assert statuses[200] or statuses[206], f"no successful request: {dict(statuses)}"
