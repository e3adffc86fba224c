"""The agent directory in the admin: each agent's name, team, supervisor and addresses.

Saving an agent relabels the participants stored under the addresses it gained or lost, so
past calls say the new name too (``dashboard.agents.participants_relabel``).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from dashboard.admin.teams import TeamAddressFormSet
from dashboard.agents import participants_relabel
from dashboard.models import Agent, AgentAddress, canonical_address


class AgentAddressForm(forms.ModelForm):
    class Meta:
        model = AgentAddress
        fields = ("address",)

    def clean_address(self) -> str:
        address = str(self.cleaned_data["address"]).strip()
        self.canonical_raw_id = canonical_address(address)[0]
        return address


class AgentAddressInline(admin.TabularInline):
    model = AgentAddress
    form = AgentAddressForm
    formset = TeamAddressFormSet  # two spellings of one address are one address
    extra = 1
    fields = ("address", "raw_id", "number")
    readonly_fields = ("raw_id", "number")


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "supervisor", "created_at")
    list_filter = ("team",)
    search_fields = ("name", "addresses__address", "addresses__raw_id")
    list_select_related = ("team", "supervisor")
    fields = ("name", "team", "supervisor")
    inlines = (AgentAddressInline,)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        agent = form.instance
        before = set(AgentAddress.objects.filter(agent=agent).values_list("raw_id", flat=True))
        super().save_related(request, form, formsets, change)
        after = set(AgentAddress.objects.filter(agent=agent).values_list("raw_id", flat=True))
        # A renamed agent relabels all its addresses; otherwise only those that changed.
        participants_relabel(before | after)

    def delete_model(self, request: HttpRequest, obj: Agent) -> None:
        raw_ids = list(obj.addresses.values_list("raw_id", flat=True))
        super().delete_model(request, obj)
        participants_relabel(raw_ids)
