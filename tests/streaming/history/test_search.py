"""Search finds what was said whichever way its accents were typed (both backends)."""

from __future__ import annotations

import unicodedata

import pytest
from django.contrib.auth.models import User
from django.test import Client

from streaming.history.search import utterances_matching
from tests.factories import Said, make_call

pytestmark = pytest.mark.django_db

COMPOSED = "Zoë Martínez"
DECOMPOSED = unicodedata.normalize("NFD", COMPOSED)


@pytest.mark.parametrize(("said", "typed"), [(DECOMPOSED, COMPOSED), (COMPOSED, DECOMPOSED)])
def test_composed_and_decomposed_text_find_each_other(
    said: str, typed: str, supervisor: User
) -> None:
    assert said != typed  # not the same code points
    make_call("accents", said=[Said("4:+15550001", f"Hi, {said} here", 1.0)])
    assert [u.text for u in utterances_matching(typed)] == [f"Hi, {COMPOSED} here"]
    client = Client()
    client.force_login(supervisor)
    assert client.get("/api/calls/", {"q": typed}).json()["count"] == 1
    assert "accents" in client.get("/history/", {"q": typed}).content.decode()
