"""The API's pagination: 50 rows a page, ``?page_size=`` up to 200, with the call lists'
deferred-join paginator (``dashboard.selectors``)."""

from __future__ import annotations

from rest_framework.pagination import PageNumberPagination

from dashboard.selectors import DeferredJoinPaginator


class CallsitePagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    django_paginator_class = DeferredJoinPaginator
