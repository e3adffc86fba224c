"""The Django admin: call history (calls.py), the other records (records.py), teams (teams.py),
supervisors' actions and profiles (actions.py)."""

from dashboard.admin import actions, agents, calls, delivery, records, teams  # noqa: F401  (registers the model admins)
