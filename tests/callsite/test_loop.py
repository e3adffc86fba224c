"""The event loop under Twisted's reactor: uvloop by default, asyncio's on request
(``CALLSITE_EVENT_LOOP``, ``callsite.loop``), chosen before Daphne creates it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvloop
from django.conf import settings

from callsite.env import ImproperlyConfiguredEnv
from callsite.loop import install_event_loop_policy
from simulator import DEMO_DIR, load_script, stream_call
from streaming.models import Utterance
from tests.conftest import DaphneServer
from tests.servers import start_server


@pytest.fixture
def policy() -> Iterator[None]:
    before = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(before)


@pytest.mark.usefixtures("policy")
def test_uvloop_is_the_default() -> None:
    assert install_event_loop_policy({}) == "uvloop"
    assert isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)


@pytest.mark.usefixtures("policy")
def test_asyncio_keeps_the_default_policy() -> None:
    before = asyncio.get_event_loop_policy()
    assert install_event_loop_policy({"CALLSITE_EVENT_LOOP": " AsyncIO "}) == "asyncio"
    assert asyncio.get_event_loop_policy() is before


def test_an_unknown_loop_is_refused_by_name() -> None:
    with pytest.raises(ImproperlyConfiguredEnv, match="CALLSITE_EVENT_LOOP must be one of"):
        install_event_loop_policy({"CALLSITE_EVENT_LOOP": "tokio"})


def _stored(connection_id: str, count: int, within: float = 30) -> int:
    deadline = time.monotonic() + within
    stored = 0
    while time.monotonic() < deadline:
        stored = Utterance.objects.filter(call__connection_id=connection_id).count()
        if stored >= count:
            break
        time.sleep(0.05)
    return stored


@pytest.mark.live_server
@pytest.mark.parametrize(("choice", "loop"), [("", "uvloop.Loop"), ("asyncio", "asyncio.")])
def test_the_server_runs_a_call_on_the_chosen_loop(
    daphne_factory: Callable[..., DaphneServer], choice: str, loop: str
) -> None:
    environment = {"CALLSITE_EVENT_LOOP": choice} if choice else {}
    server = daphne_factory(**environment)
    script = load_script(DEMO_DIR / "short_call.toml")
    asyncio.run(
        stream_call(
            f"{server.ws_url}/ws/acs/",
            call_connection_id=f"loop-{choice or 'default'}",
            script=script,
            token=settings.CALLSITE_ACS_SHARED_SECRET,
            speed=0,
        )
    )
    assert _stored(f"loop-{choice or 'default'}", len(script.turns)) == len(script.turns)
    assert f"event loop: {loop}" in server.output()


@pytest.mark.live_server
def test_a_server_with_an_unknown_loop_does_not_start(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="CALLSITE_EVENT_LOOP must be one of uvloop, asyncio"):
        start_server({"CALLSITE_EVENT_LOOP": "tokio"}, log_dir=tmp_path, within=20)
