"""The Django admin: call history (calls.py), the other records (records.py), teams (teams.py)."""

from dashboard.admin import calls, records, teams  # noqa: F401  (registers the model admins)
