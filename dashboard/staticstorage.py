"""Static files with hashed names, compressed (gzip and Brotli) when collected.

WhiteNoise's ``CompressedManifestStaticFilesStorage``: ``collectstatic`` writes each file under
a name with a hash of its content (``app.3f9c1e.css``) beside ``.gz`` and ``.br`` copies, so
they can be cached for ever and served compressed (by WhiteNoise under Daphne, or by nginx:
``manage.py nginx_config``). Where nothing was collected (a fresh checkout, the test suite,
``make demo``), pages name files by their plain names and they are found where they live,
instead of every page failing on a missing manifest.
"""

from __future__ import annotations

from typing import Any

from django.core.files.storage import FileSystemStorage
from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticStorage(CompressedManifestStaticFilesStorage):
    """Hashed names when collected; plain names (served from the finders) when not."""

    manifest_strict = False

    def url(self, name: Any, force: bool = False) -> str:
        try:
            return super().url(name, force)
        except ValueError:  # not collected: no manifest entry and no file to hash
            return FileSystemStorage.url(self, name)
