"""The agent directory: imported from CSV (dry run, report, refusals), edited in the admin,
and an imported agent's name on the wall, the call page, the history page, the exports and
the API, for a call streamed through the ACS socket."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from dashboard.models import Agent, AgentAddress, Team
from dashboard.permissions import STAFF_GROUP
from streaming.models import Call, Participant
from tests import factories
from tests.helpers import acs_socket, page_socket, transcription_data, wait_for_event

ANN = "8:acs:5f0c2a91-3d4e-4b6a-9c1f-7e2d8b3a6c40_0000002a-7d1e-4c2b-a0f3-9b8e6d5c4a31"
BOB = "8:acs:5f0c2a91-3d4e-4b6a-9c1f-7e2d8b3a6c40_0000002a-0000-0000-0000-00000000b0b0"
CUSTOMER = "4:+15555550123"


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agents.csv"
    path.write_text(text, encoding="utf-8")
    return path


def _run(path: Path, *extra: str) -> str:
    out = io.StringIO()
    call_command("import_agents", str(path), *extra, stdout=out)
    return out.getvalue()


def _setup() -> None:
    Team.objects.create(name="Billing")
    Team.objects.create(name="Sales")
    User.objects.create_user("lead", password="lead-password-123")


@pytest.mark.django_db
def test_a_dry_run_reports_and_saves_nothing_then_the_import_saves(tmp_path: Path) -> None:
    _setup()
    path = _csv(
        tmp_path,
        f"name,team,supervisor,addresses\nAnn Lee,Billing,lead,{ANN};+1 555 010 0001\n"
        f"Bob Stone,,,{BOB}\n",
    )
    report = _run(path, "--dry-run")
    assert "created Ann Lee (2 addresses)" in report
    assert "created Bob Stone (1 addresses)" in report
    assert "2 would be created, 0 would be updated, 0 unchanged" in report
    assert "dry run: nothing was saved" in report
    assert not Agent.objects.exists()

    report = _run(path)
    assert "2 created, 0 updated, 0 unchanged" in report
    ann = Agent.objects.get(name="Ann Lee")
    assert ann.team is not None
    assert ann.team.name == "Billing"
    assert ann.supervisor is not None
    assert ann.supervisor.username == "lead"
    assert set(ann.addresses.values_list("raw_id", flat=True)) == {ANN, "4:+15550100001"}

    path.write_text(
        f"name,team,supervisor,addresses\nAnn Lee,Sales,lead,{ANN}\nBob Stone,,,{BOB}\n",
        encoding="utf-8",
    )
    report = _run(path)
    assert "updated Ann Lee: team Billing → Sales; -4:+15550100001" in report
    assert "0 created, 1 updated, 1 unchanged" in report


@pytest.mark.django_db
def test_bad_rows_are_each_reported_with_their_line_and_nothing_is_saved(tmp_path: Path) -> None:
    _setup()
    path = _csv(
        tmp_path,
        "name,team,supervisor,addresses\n"
        f"Ann Lee,Nowhere,lead,{ANN}\n"
        ",Billing,,+15550100009\n"
        f"Bob Stone,,ghost,{ANN}\n"
        "Cy Ray,,,not an address\n"
        "Dee Fox,,,+15550100002\n",
    )
    with pytest.raises(CommandError, match="errors: nothing was saved"):
        call_command(
            "import_agents", str(path), stdout=io.StringIO(), stderr=(err := io.StringIO())
        )
    errors = err.getvalue()
    assert "line 2: no team named 'Nowhere'" in errors
    assert "line 3: no name" in errors
    assert "line 4: no user named 'ghost'" in errors
    assert f"line 4: {ANN} is already on line 2" in errors
    assert "line 5: 'not an address'" in errors
    assert not Agent.objects.exists()  # not even Dee Fox, whose row was fine


@pytest.mark.django_db
def test_an_address_of_another_agent_is_refused(tmp_path: Path) -> None:
    agent = Agent.objects.create(name="Ann Lee")
    AgentAddress.objects.create(agent=agent, address=ANN)
    path = _csv(tmp_path, f"name,addresses\nBob Stone,{ANN}\n")
    with pytest.raises(CommandError):
        call_command(
            "import_agents", str(path), stdout=io.StringIO(), stderr=(err := io.StringIO())
        )
    assert f"{ANN} belongs to Ann Lee" in err.getvalue()
    assert not Agent.objects.filter(name="Bob Stone").exists()


@pytest.mark.django_db
def test_a_missing_column_or_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError):
        call_command(
            "import_agents",
            str(_csv(tmp_path, "who,where\nAnn,x\n")),
            stdout=io.StringIO(),
            stderr=(err := io.StringIO()),
        )
    assert "missing: name, addresses" in err.getvalue()
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_agents", str(tmp_path / "absent.csv"))


@pytest.mark.django_db
def test_importing_relabels_participants_of_past_calls(tmp_path: Path, supervisor: User) -> None:
    call_id = factories.make_call("past-call", people=[ANN, CUSTOMER])
    assert Participant.objects.get(call_id=call_id, raw_id=ANN).display_label == "Agent 4a31"
    report = _run(_csv(tmp_path, f"name,addresses\nAnn Lee,{ANN}\n"))
    assert "1 stored participants relabelled" in report
    assert Participant.objects.get(call_id=call_id, raw_id=ANN).display_label == "Ann Lee"
    api = Client()
    api.force_login(supervisor)
    assert api.get(f"/api/calls/{call_id}/").json()["participants"][0]["label"] == "Ann Lee"


@pytest.mark.django_db
def test_an_agent_is_edited_in_the_admin_and_their_calls_follow(db: Any) -> None:
    call_id = factories.make_call("admin-call", people=[BOB])
    User.objects.create_superuser("root", password="root-password-123")
    admin = Client()
    admin.login(username="root", password="root-password-123")
    response = admin.post(
        "/admin/dashboard/agent/add/",
        {
            "name": "Bob Stone",
            "team": "",
            "supervisor": "",
            "addresses-TOTAL_FORMS": "1",
            "addresses-INITIAL_FORMS": "0",
            "addresses-MIN_NUM_FORMS": "0",
            "addresses-MAX_NUM_FORMS": "1000",
            "addresses-0-address": BOB,
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Participant.objects.get(call_id=call_id).display_label == "Bob Stone"
    agent = Agent.objects.get(name="Bob Stone")
    admin.post(f"/admin/dashboard/agent/{agent.pk}/delete/", {"post": "yes"})
    assert Participant.objects.get(call_id=call_id).display_label == "Agent b0b0"


@pytest.mark.django_db(transaction=True)
async def test_an_imported_agents_name_is_on_every_page_export_and_api(
    tmp_path: Path, supervisor: User
) -> None:
    path = _csv(tmp_path, f"name,addresses\nAnn Lee,{ANN}\n")
    await database_sync_to_async(_run)(path)

    wall = await page_socket(supervisor)
    assert (await wall.connect())[0]
    await wait_for_event(wall, lambda m: m["type"] == "snapshot")
    acs = acs_socket("directory-call")
    assert (await acs.connect())[0]
    await acs.send_to(text_data=transcription_data("Thanks for calling.", speaker=ANN))
    await acs.send_to(text_data=transcription_data("Hello.", speaker=CUSTOMER, offset=30_000_000))
    joined = await wait_for_event(
        wall,
        lambda m: m["type"] == "call.participant" and m["participant"]["raw_id"] == ANN,
    )
    assert joined["participant"]["label"] == "Ann Lee"
    assert joined["participant"]["role"] == "agent"
    call_id = joined["call_id"]

    page = await page_socket(supervisor, f"/ws/dashboard/calls/{call_id}/")
    assert (await page.connect())[0]

    def has_both(m: dict[str, Any]) -> bool:
        return m["type"] == "snapshot" and len(m["captions"]) == 2

    snapshot = await wait_for_event(page, has_both)
    labels = {p["raw_id"]: p["label"] for p in snapshot["call"]["participants"]}
    assert labels[ANN] == "Ann Lee"
    assert snapshot["captions"][0]["participant"]["label"] == "Ann Lee"
    for socket in (acs, wall, page):
        await socket.disconnect()

    def read_http() -> None:
        client = Client()
        client.force_login(supervisor)
        listed = client.get("/api/calls/").json()["results"][0]
        assert {p["raw_id"]: p["label"] for p in listed["participants"]}[ANN] == "Ann Lee"
        spoken = client.get(f"/api/calls/{call_id}/utterances/").json()["results"]
        assert spoken[0]["speaker"]["label"] == "Ann Lee"
        rows = list(
            csv.DictReader(
                io.StringIO(client.get(f"/api/calls/{call_id}/transcript.csv").content.decode())
            )
        )
        assert rows[0]["speaker"] == "Ann Lee"
        assert "Ann Lee" in client.get(f"/api/calls/{call_id}/transcript.txt").content.decode()
        assert "Ann Lee" in client.get("/history/").content.decode()
        assert Call.objects.filter(pk=call_id).exists()

    await database_sync_to_async(read_http)()


@pytest.mark.django_db
def test_history_and_the_api_filter_calls_by_agent_name(tmp_path: Path, supervisor: User) -> None:
    _run(_csv(tmp_path, f"name,addresses\nAnn Lee,{ANN}\nBob Stone,{BOB}\n"))
    anns = factories.make_call("ann-call", people=[ANN, CUSTOMER])
    bobs = factories.make_call("bob-call", people=[BOB, CUSTOMER])
    client = Client()
    client.force_login(supervisor)
    ids = [c["id"] for c in client.get("/api/calls/?agent=ann").json()["results"]]
    assert ids == [anns]
    assert [c["id"] for c in client.get(f"/api/calls/?agent={BOB}").json()["results"]] == [bobs]
    assert client.get("/api/calls/?agent=%2B15555550123").json()["results"] == []  # a customer
    page = client.get("/history/?agent=Bob+Stone").content.decode()
    assert f'data-call-id="{bobs}"' in page
    assert f'data-call-id="{anns}"' not in page


# --- the agents page -------------------------------------------------------------------------


def _agents_page(user: User) -> Any:
    return _logged_in(user).get("/agents/")


def _logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_the_agents_page_lists_a_supervisors_agents_with_their_last_call(
    django_assert_max_num_queries: Any,
) -> None:
    paula = factories.team_supervisor("paula", "+15550100000")
    team = Team.objects.get(members=paula)
    ann = Agent.objects.create(name="Ann Lee", team=team)
    AgentAddress.objects.create(agent=ann, address=ANN)
    bob = Agent.objects.create(name="Bob Stone", supervisor=paula)
    AgentAddress.objects.create(agent=bob, address=BOB)
    Agent.objects.create(name="Olga Other", team=Team.objects.create(name="Elsewhere"))
    for n in range(3):  # Ann's calls: the last ended latest
        factories.make_call(
            f"ann-{n}",
            people=(ANN, CUSTOMER),
            started=timezone.now() - timedelta(minutes=10 - n),
            length=timedelta(seconds=30),
        )
    last = Call.objects.filter(connection_id="ann-2").values_list("ended_at", flat=True).get()
    assert last is not None

    # The page's queries do not grow with agents or calls.
    client = _logged_in(paula)
    with django_assert_max_num_queries(7):
        page = client.get("/agents/")
    assert page.status_code == 200
    listed = [(a["name"], a["team"], a["last_call_ended_at"]) for a in page.context["agents"]]
    assert listed == [("Ann Lee", "paula's team", last.isoformat()), ("Bob Stone", "", None)]
    body = page.content.decode()
    assert "Olga Other" not in body
    assert 'href="/agents/"' in body  # in the navigation of every page
    assert "2 agents" in body

    staff = factories.user_in("stella", STAFF_GROUP)
    assert [a["name"] for a in _agents_page(staff).context["agents"]] == [
        "Ann Lee",
        "Bob Stone",
        "Olga Other",
    ]


@pytest.mark.django_db
def test_only_supervisors_see_the_agents_page() -> None:
    assert Client().get("/agents/").status_code == 302  # to the login page
    assert _agents_page(factories.user_in("clerk")).status_code == 403
    empty = _agents_page(factories.team_supervisor("nadia"))
    assert empty.status_code == 200
    assert "No agents to show" in empty.content.decode()
