"""Teams in the Django admin: their members and the addresses whose calls they see."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import NON_FIELD_ERRORS
from django.db.models import Count, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from dashboard.models import Team, TeamAddress, canonical_address


class TeamAddressForm(forms.ModelForm):
    """An address is checked with ``canonical_address``; its error is shown on the field."""

    class Meta:
        model = TeamAddress
        fields = ("address",)

    def clean_address(self) -> str:
        address = str(self.cleaned_data["address"]).strip()
        self.canonical_raw_id = canonical_address(address)[0]  # ValidationError: on the field
        return address

    def full_clean(self) -> None:
        super().full_clean()
        # The model's own clean() checks the address again; when the field has failed, that
        # only repeats the field's error without naming the field.
        if self.is_bound and self.has_error("address"):
            self.errors.pop(NON_FIELD_ERRORS, None)


class TeamAddressFormSet(BaseInlineFormSet):
    """Two spellings of one address (``+1 555 123-0000`` and ``4:+15551230000``) are one
    address: the second is refused on its field rather than by the database."""

    def clean(self) -> None:
        super().clean()
        seen: dict[str, str] = {}
        for form in self.forms:
            raw_id = getattr(form, "canonical_raw_id", None)
            deleted = self.can_delete and form.cleaned_data.get("DELETE")
            if raw_id is None or not form.is_valid() or deleted:
                continue
            if raw_id in seen:
                form.add_error("address", f"The same address as {seen[raw_id]!r}.")
            else:
                seen[raw_id] = form.cleaned_data["address"]


class TeamAddressInline(admin.TabularInline):
    model = TeamAddress
    form = TeamAddressForm
    formset = TeamAddressFormSet
    extra = 1
    fields = ("address", "raw_id", "number")
    readonly_fields = ("raw_id", "number")


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "member_count", "address_count", "created_at")
    search_fields = ("name", "addresses__address", "addresses__raw_id", "members__username")
    fields = ("name", "members")
    filter_horizontal = ("members",)
    inlines = (TeamAddressInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                member_total=Count("members", distinct=True),
                address_total=Count("addresses", distinct=True),
            )
        )

    @admin.display(description="members", ordering="member_total")
    def member_count(self, team: Any) -> int:
        return int(team.member_total)

    @admin.display(description="addresses", ordering="address_total")
    def address_count(self, team: Any) -> int:
        return int(team.address_total)
