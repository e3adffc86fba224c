from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from callsite import health
from callsite.login import AdminLoginForm, LoginView, admin_password_change

admin.site.login_form = AdminLoginForm

urlpatterns = [
    # Before the admin's own: the same page, with guesses of the old password limited.
    path("admin/password_change/", admin.site.admin_view(admin_password_change)),
    path("admin/", admin.site.urls),
    path("acs/", include("streaming.automation.urls")),
    path("api/", include("dashboard.api.urls")),
    path("metrics", health.metrics, name="metrics"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("dashboard.urls")),
]
