"""HTTP Range requests (RFC 9110, section 14) for files served whole or in part.

One range per request, which is what audio players ask for: a header naming several, or
one that does not parse, is ignored and the whole file is served, as the RFC allows.
"""

from __future__ import annotations

import re

_BYTES = re.compile(r"bytes=(\d*)-(\d*)", re.ASCII)


class Unsatisfiable(Exception):
    """The range starts past the end of the file: 416, with the file's length."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The first and last byte (inclusive) a Range header asks of a ``size``-byte file;
    None to serve it whole."""
    match = _BYTES.fullmatch((header or "").strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first:  # bytes=-N: the last N bytes
        if not last:
            return None
        if int(last) == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - int(last)), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise Unsatisfiable
    return start, min(int(last), size - 1) if last else size - 1
