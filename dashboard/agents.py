"""The agent directory: names for raw ids, relabelling, and the CSV import.

``agent_name`` is registered with ``streaming.directory`` when the app starts, so every
participant a call meets is labelled with its agent's name (and given the agent role). When
the directory changes (the admin, an import), the participants already stored under the
changed addresses are relabelled, so past calls, exports and the API say the new name too.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from dashboard.models import Agent, AgentAddress, Team, canonical_address
from streaming.acs.identities import MAX_LABEL, identity_from_raw_id
from streaming.models import Participant, ParticipantRole


def agent_name(raw_id: str) -> str | None:
    """The name of the agent with this raw id (``4:+1555...`` for a number), if listed."""
    found = AgentAddress.objects.filter(raw_id=raw_id).values_list("agent__name", flat=True)
    return found.first()


def participants_relabel(raw_ids: Iterable[str]) -> int:
    """Give the stored participants with these raw ids their directory name, or, for an
    address no longer listed, the label their raw id (or ACS's display name) gives them."""
    raw_ids = set(raw_ids)
    names = dict(
        AgentAddress.objects.filter(raw_id__in=raw_ids).values_list("raw_id", "agent__name")
    )
    changed = 0
    participants = Participant.objects.filter(raw_id__in=raw_ids)
    for p in participants.only("pk", "raw_id", "display_label", "display_name", "role"):
        identity = identity_from_raw_id(p.raw_id)
        name = names.get(p.raw_id)
        label = (name or p.display_name or identity.label)[:MAX_LABEL]
        role = ParticipantRole.AGENT if name else p.role
        if (label, role) != (p.display_label, p.role):
            Participant.objects.filter(pk=p.pk).update(display_label=label, role=role)
            changed += 1
    return changed


# --------------------------------------------------------------------------- the CSV import

COLUMNS = ("name", "team", "supervisor", "addresses")
_SPLIT = re.compile(r"[;\n]+")


@dataclass
class ImportReport:
    """What an import did (or, in a dry run, would do)."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    relabelled: int = 0
    errors: list[str] = field(default_factory=list)

    def lines(self, *, dry_run: bool) -> list[str]:
        out = [f"created {line}" for line in self.created]
        out += [f"updated {line}" for line in self.updated]
        would = "would be " if dry_run else ""
        out.append(
            f"{len(self.created)} {would}created, {len(self.updated)} {would}updated, "
            f"{self.unchanged} unchanged; {self.relabelled} stored participants "
            f"{would}relabelled"
        )
        if dry_run:
            out.append("dry run: nothing was saved")
        return out


@dataclass(frozen=True)
class _Row:
    line: int
    name: str
    team: Team | None
    supervisor: Any
    raw_ids: dict[str, str]  # raw id -> the address as written


def _addresses(text: str) -> list[str]:
    return [a.strip() for a in _SPLIT.split(text) if a.strip()]


def _read(text: str, report: ImportReport) -> list[_Row]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in ("name", "addresses") if c not in header]
    if missing:
        report.errors.append(
            f"line 1: the header needs the columns {', '.join(COLUMNS)}; missing: "
            f"{', '.join(missing)}"
        )
        return []
    reader.fieldnames = header
    teams = {t.name: t for t in Team.objects.all()}
    users = get_user_model()._default_manager
    rows: list[_Row] = []
    names: dict[str, int] = {}
    owners: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        values = {k: (v or "").strip() for k, v in row.items() if k in COLUMNS}
        name = " ".join(values.get("name", "").split())
        if not name:
            report.errors.append(f"line {line}: no name")
            continue
        if len(name) > MAX_LABEL:
            report.errors.append(f"line {line}: the name is longer than {MAX_LABEL} characters")
            continue
        if name in names:
            report.errors.append(f"line {line}: {name} is already on line {names[name]}")
            continue
        names[name] = line
        team = None
        if values.get("team"):
            team = teams.get(values["team"])
            if team is None:
                report.errors.append(f"line {line}: no team named {values['team']!r}")
        supervisor = None
        if values.get("supervisor"):
            supervisor = users.filter(username=values["supervisor"]).first()
            if supervisor is None:
                report.errors.append(f"line {line}: no user named {values['supervisor']!r}")
        raw_ids: dict[str, str] = {}
        for address in _addresses(values.get("addresses", "")):
            try:
                raw_id = canonical_address(address)[0]
            except ValidationError as error:
                report.errors.append(f"line {line}: {address!r}: {' '.join(error.messages)}")
                continue
            if raw_id in owners and owners[raw_id] != line:
                report.errors.append(f"line {line}: {address} is already on line {owners[raw_id]}")
                continue
            owners[raw_id] = line
            raw_ids[raw_id] = address
        rows.append(_Row(line, name, team, supervisor, raw_ids))
    return rows


def agents_import(text: str, *, dry_run: bool = False) -> ImportReport:
    """Create or update the agents of a CSV (``name,team,supervisor,addresses``; addresses
    separated by ``;``), matched by name. Each listed agent's addresses become exactly those
    given; agents not in the file are left as they are. Any error saves nothing."""
    report = ImportReport()
    rows = _read(text, report)
    if report.errors:
        return report
    with transaction.atomic():
        touched: set[str] = set()
        for row in rows:
            taken = (
                AgentAddress.objects.filter(raw_id__in=row.raw_ids)
                .exclude(agent__name=row.name)
                .select_related("agent")
            )
            owned = list(taken)
            for other in owned:
                report.errors.append(
                    f"line {row.line}: {other.address} belongs to {other.agent.name}, who is "
                    "not in this file with it"
                )
            if owned:
                continue
            agent = Agent.objects.filter(name=row.name).first()
            if agent is None:
                agent = Agent.objects.create(
                    name=row.name, team=row.team, supervisor=row.supervisor
                )
                for address in row.raw_ids.values():
                    AgentAddress.objects.create(agent=agent, address=address)
                touched |= set(row.raw_ids)
                report.created.append(f"{row.name} ({len(row.raw_ids)} addresses)")
                continue
            changes = []
            if agent.team_id != (row.team.pk if row.team else None):
                changes.append(f"team {agent.team or '-'} → {row.team or '-'}")
            if agent.supervisor_id != (row.supervisor.pk if row.supervisor else None):
                changes.append(f"supervisor {agent.supervisor or '-'} → {row.supervisor or '-'}")
            agent.team, agent.supervisor = row.team, row.supervisor
            agent.save()
            had = set(agent.addresses.values_list("raw_id", flat=True))
            added, removed = set(row.raw_ids) - had, had - set(row.raw_ids)
            agent.addresses.filter(raw_id__in=removed).delete()
            for raw_id in sorted(added):
                AgentAddress.objects.create(agent=agent, address=row.raw_ids[raw_id])
            changes += [f"+{r}" for r in sorted(added)] + [f"-{r}" for r in sorted(removed)]
            touched |= added | removed
            if changes:
                report.updated.append(f"{row.name}: {'; '.join(changes)}")
            else:
                report.unchanged += 1
        if not report.errors:
            report.relabelled = participants_relabel(touched)
        if report.errors or dry_run:
            transaction.set_rollback(True)
            if report.errors:
                report.created, report.updated, report.unchanged = [], [], 0
                report.relabelled = 0
    return report
