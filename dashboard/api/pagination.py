"""Pagination of call lists: the API's (50 rows a page, ``?page_size=`` up to 200), the
history page's and the admin's, all with :class:`DeferredJoinPaginator`."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from rest_framework.pagination import PageNumberPagination


class DeferredJoinPaginator(Paginator):
    """A page is the rows whose keys are on it: the keys first, then the rows for them.

    Call lists compute figures per row (mean confidence, alert count) in subqueries. With a
    plain ``OFFSET``, the database computes them for every row it skips, so page 200 costs
    200 times page 1. Here the ``OFFSET`` runs on the keys alone, in a subquery, and the
    figures are computed for the page's rows only. Same number of queries, same rows and
    order as :class:`~django.core.paginator.Paginator`.
    """

    def page(self, number: Any) -> Page:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        rows = self.object_list
        if not isinstance(rows, QuerySet):
            return Page(rows[bottom:top], number, self)
        keys = rows.values("pk")[bottom:top]
        return Page(rows.filter(pk__in=keys), number, self)


class CallsitePagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    django_paginator_class = DeferredJoinPaginator
