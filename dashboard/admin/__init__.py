"""The Django admin: call history (calls.py), the other records (records.py), teams (teams.py),
supervisors' actions and profiles (actions.py), recordings and who listened (recordings.py)."""

from dashboard.admin import (  # noqa: F401  (registers the model admins)
    actions,
    agents,
    calls,
    delivery,
    recordings,
    records,
    teams,
)
