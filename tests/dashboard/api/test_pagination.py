"""The deferred-join paginator gives exactly the pages Django's paginator gives."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.paginator import Paginator
from django.utils import timezone

from dashboard.selectors import DeferredJoinPaginator, newest_first, user_calls
from tests.dashboard.api.conftest import Said, make_call


@pytest.mark.parametrize(("per_page", "orphans"), [(5, 0), (5, 2), (4, 3), (20, 0)])
def test_pages_match_django_s_paginator(staff: Any, per_page: int, orphans: int) -> None:
    now = timezone.now()
    for n in range(13):
        # Two calls share each start time, so the order's tie-break (-pk) is exercised.
        make_call(
            f"page-{n}",
            said=[Said(None, f"line {n}", 1.0, confidence=0.5 + n / 100)],
            started_at=now - timedelta(minutes=n // 2),
            alerts=n % 3,
        )
    calls = newest_first(user_calls(staff))
    plain = Paginator(calls, per_page, orphans=orphans)
    deferred = DeferredJoinPaginator(calls, per_page, orphans=orphans)
    assert deferred.num_pages == plain.num_pages
    for number in plain.page_range:
        want = list(plain.page(number).object_list)
        got = list(deferred.page(number).object_list)
        assert [c.pk for c in got] == [c.pk for c in want]
        # the computed figures come along with the rows
        assert [(c.alert_count, c.mean_confidence) for c in got] == [
            (c.alert_count, c.mean_confidence) for c in want
        ]


def test_a_plain_list_is_paginated_too() -> None:
    pages = DeferredJoinPaginator(list(range(7)), 3)
    assert [list(pages.page(n).object_list) for n in pages.page_range] == [
        [0, 1, 2],
        [3, 4, 5],
        [6],
    ]
