"""Find calls by what was said in them.

On PostgreSQL this is full-text search over utterance text (``websearch_to_tsquery`` with
the ``simple`` configuration, so it works for any language and a quoted "phrase" matches
words in order), backed by a GIN index (migration ``0007``). Elsewhere (SQLite) it falls
back to a case-insensitive substring match of the whole phrase.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import connection
from django.db.models import Exists, OuterRef, QuerySet

from streaming.models import Utterance

SEARCH_CONFIG = "simple"


def utterances_matching(phrase: str) -> QuerySet[Utterance]:
    """Utterances whose text matches ``phrase`` (see the module docstring).

    Text is stored composed (NFC, ``streaming.services``), so the phrase is composed too: an
    "é" typed as e + combining accent finds the "é" that was said.
    """
    phrase = unicodedata.normalize("NFC", phrase).strip()
    if not phrase:
        return Utterance.objects.all()
    if connection.vendor == "postgresql":
        query = SearchQuery(phrase, config=SEARCH_CONFIG, search_type="websearch")
        return Utterance.objects.annotate(
            search=SearchVector("text", config=SEARCH_CONFIG)
        ).filter(search=query)
    return Utterance.objects.filter(text__icontains=phrase)


def calls_matching(calls: QuerySet[Any], phrase: str) -> QuerySet[Any]:
    """The calls of ``calls`` in which someone said ``phrase``."""
    if not phrase.strip():
        return calls
    said = utterances_matching(phrase).filter(call=OuterRef("pk"))
    return calls.filter(Exists(said))
