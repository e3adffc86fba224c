"""The read-only REST API under /api/ (docs/api.md).

Every view starts from ``dashboard.permissions.visible_calls(request.user)``: a call the user
may not see does not exist for them (404), whatever the endpoint.
"""
