"""The login forms, with failed attempts counted and limited.

A password may be tried ``CALLSITE_LOGIN_MAX_FAILURES`` times (10) from one address within
``CALLSITE_LOGIN_WINDOW_SECONDS`` (15 minutes), and five times that from all addresses
together: an address can be forged through ``X-Forwarded-For``, a username cannot. Past
either limit the form refuses the username, right password or not, until the window ends,
and says so. The counts live in the default cache (Redis in production, shared by every
worker); while it is away logins are not counted, with a warning, rather than refused.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.forms.utils import ErrorList
from django.http import HttpResponse

logger = logging.getLogger(__name__)

TOO_MANY = "too_many_failures"
ALL_ADDRESSES = 5  # the username's limit over every address, in multiples of the per-address one


def _keys(username: str, address: str) -> tuple[str, str]:
    name = hashlib.sha256(username.strip().casefold().encode()).hexdigest()[:32]
    return f"login-failures:{name}:{address}", f"login-failures:{name}"


class LoginThrottle:
    """The failure counts of one username, from one address."""

    def __init__(self, username: str, address: str) -> None:
        self.limit = int(settings.CALLSITE_LOGIN_MAX_FAILURES)
        self.window = int(settings.CALLSITE_LOGIN_WINDOW_SECONDS)
        self.address = address
        self.from_address, self.everywhere = _keys(username, address)

    def blocked(self) -> bool:
        if not self.limit:
            return False
        try:
            counts = cache.get_many([self.from_address, self.everywhere])
        except Exception as error:  # the cache backend's own connection errors
            logger.warning("login failures not checked, the cache is unavailable: %s", error)
            return False
        return (
            counts.get(self.from_address, 0) >= self.limit
            or counts.get(self.everywhere, 0) >= self.limit * ALL_ADDRESSES
        )

    def failed(self) -> None:
        if not self.limit:
            return
        try:
            for key in (self.from_address, self.everywhere):
                # The window starts at the first failure; later ones do not extend it.
                cache.add(key, 0, timeout=self.window)
                cache.incr(key)
        except Exception as error:
            logger.warning("login failure not counted, the cache is unavailable: %s", error)


class ThrottledLoginMixin(forms.Form):
    """Refuses a username past its failure limits; counts each wrong password."""

    request: Any
    refused = ""  # why the form refused the username outright, for the page to say

    def clean(self) -> dict[str, Any]:
        username = str(self.cleaned_data.get("username") or "")
        address = str(self.request.META.get("REMOTE_ADDR", "")) if self.request else ""
        throttle = LoginThrottle(username, address)
        if username and throttle.blocked():
            minutes = max(1, round(throttle.window / 60))
            logger.warning("login refused: too many failures for a username from %s", address)
            self.refused = (
                f"Too many failed logins for this username. Try again in {minutes} minutes, "
                "or ask an administrator to set a new password."
            )
            raise forms.ValidationError(self.refused, code=TOO_MANY)
        try:
            super().clean()
        except forms.ValidationError as error:
            if username and getattr(error, "code", None) == "invalid_login":
                throttle.failed()
            raise
        return self.cleaned_data


class LoginForm(ThrottledLoginMixin, AuthenticationForm):
    pass


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass


class LoginView(auth_views.LoginView):
    """Django's login view with :class:`LoginForm`; a refusal for too many failures is 429."""

    authentication_form = LoginForm

    def form_invalid(self, form: Any) -> HttpResponse:
        response = super().form_invalid(form)
        errors: ErrorList = form.non_field_errors()
        if any(getattr(e, "code", None) == TOO_MANY for e in errors.as_data()):
            response.status_code = 429
        return response
