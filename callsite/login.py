"""The login forms and the admin's password change, with failed attempts counted and limited.

A password may be tried ``CALLSITE_LOGIN_MAX_FAILURES`` times (10) from one address within
``CALLSITE_LOGIN_WINDOW_SECONDS`` (15 minutes), and five times that from all addresses
together: an address can be forged, a username cannot. Past either limit the form refuses
the username, right password or not, until the window ends, and says so. The counts live in
the default cache (Redis in production, shared by every worker); while it is away logins are
not counted, with a warning, rather than refused.

An attempt is counted *before* its password is checked (an atomic increment), and given back
if the password was right: a burst of concurrent attempts, each in its own thread, cannot all
be checked while the count still reads below the limit. The old password asked by the
admin's password change is limited the same way, per user.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm, AdminPasswordChangeForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.forms.utils import ErrorList
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.urls import reverse

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
        self.reserved = False

    def reserve(self) -> bool:
        """Count this attempt before its password is checked; False if it is over a limit."""
        if not self.limit:
            return True
        try:
            counts = []
            for key in (self.from_address, self.everywhere):
                # The window starts at the first attempt; later ones do not extend it.
                cache.add(key, 0, timeout=self.window)
                counts.append(cache.incr(key))
        except Exception as error:  # the cache backend's own connection errors
            logger.warning("login attempts not counted, the cache is unavailable: %s", error)
            return True
        self.reserved = True
        here, everywhere = counts
        return here <= self.limit and everywhere <= self.limit * ALL_ADDRESSES

    def release(self) -> None:
        """The attempt was not a wrong password after all: it does not count."""
        if not self.reserved:
            return
        self.reserved = False
        try:
            for key in (self.from_address, self.everywhere):
                cache.decr(key)
        except Exception as error:
            logger.warning("login attempt not given back, the cache is unavailable: %s", error)

    def refusal(self) -> forms.ValidationError:
        minutes = max(1, round(self.window / 60))
        logger.warning("login refused: too many failures for a username from %s", self.address)
        return forms.ValidationError(
            f"Too many failed logins for this username. Try again in {minutes} minutes, "
            "or ask an administrator to set a new password.",
            code=TOO_MANY,
        )


class ThrottledLoginMixin(forms.Form):
    """Refuses a username past its failure limits; counts each wrong password."""

    request: Any
    refused = ""  # why the form refused the username outright, for the page to say

    def clean(self) -> dict[str, Any]:
        username = str(self.cleaned_data.get("username") or "")
        address = str(self.request.META.get("REMOTE_ADDR", "")) if self.request else ""
        throttle = LoginThrottle(username, address)
        if username and not throttle.reserve():
            error = throttle.refusal()
            self.refused = str(error.message)
            raise error
        try:
            super().clean()
        except forms.ValidationError as error:
            if getattr(error, "code", None) != "invalid_login":
                throttle.release()
            raise
        throttle.release()
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


class ThrottledPasswordChangeForm(AdminPasswordChangeForm):
    """The admin's password change: guesses of the old password are limited per user."""

    def clean_old_password(self) -> str:
        throttle = LoginThrottle(self.user.get_username(), "password-change")
        if not throttle.reserve():
            raise throttle.refusal()
        old: str = super().clean_old_password()  # a wrong one keeps its count
        throttle.release()
        return old


def admin_password_change(request: HttpRequest) -> HttpResponseBase:
    """The admin's password change page (``/admin/password_change/``) with that form."""
    request.current_app = admin.site.name
    view = auth_views.PasswordChangeView.as_view(
        form_class=ThrottledPasswordChangeForm,
        success_url=reverse("admin:password_change_done", current_app=admin.site.name),
        template_name="registration/password_change_form.html",
        extra_context=admin.site.each_context(request),
    )
    response = view(request)
    form = getattr(response, "context_data", {}).get("form")
    if form is not None and any(
        getattr(e, "code", None) == TOO_MANY
        for e in form.errors.as_data().get("old_password", [])
    ):
        response.status_code = 429
    return response
