"""plotly.js as the static file ``plotly/plotly.min.js``, straight from the installed plotly.

The plotly Python package ships the matching plotly.js build in ``plotly/package_data/``; this
finder exposes that one file to Django's staticfiles, so ``{% static 'plotly/plotly.min.js' %}``
works under Daphne (``CALLSITE_SERVE_STATIC``), ``runserver`` and ``collectstatic`` alike,
without a CDN or a copy in the repository.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, overload

from django.contrib.staticfiles import finders
from django.contrib.staticfiles.utils import matches_patterns
from django.core.checks import CheckMessage, Error
from django.core.files.storage import FileSystemStorage, Storage

PREFIX = "plotly"
FILENAME = "plotly.min.js"
STATIC_PATH = f"{PREFIX}/{FILENAME}"


def package_data_dir() -> Path | None:
    """``plotly/package_data`` of the installed plotly, found without importing plotly."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).resolve().parent / "package_data"


class PlotlyFinder(finders.BaseFinder):
    """Finds ``plotly/plotly.min.js`` and nothing else."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.root = package_data_dir()
        self.storage: FileSystemStorage | None = None
        if self.root is not None:
            self.storage = FileSystemStorage(location=self.root)
            self.storage.prefix = PREFIX  # type: ignore[attr-defined]  # read by collectstatic

    def _path(self) -> Path | None:
        if self.root is None:
            return None
        path = self.root / FILENAME
        return path if path.is_file() else None

    def check(self, **kwargs: Any) -> list[CheckMessage]:
        if self._path() is None:
            return [
                Error(
                    f"plotly.js is missing: no {FILENAME} in the installed plotly package "
                    f"({self.root or 'plotly is not installed'}).",
                    hint="Reinstall the project's dependencies (make install).",
                    id="dashboard.E001",
                )
            ]
        return []

    @overload
    def find(self, path: str, find_all: Literal[False] = False) -> str | None: ...
    @overload
    def find(self, path: str, find_all: Literal[True]) -> list[str]: ...
    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> Any:
        """The file's absolute path (a list of it with ``find_all``).

        Anything else gives ``[]``, as Django's own finders do: ``finders.find`` treats a
        returned ``None`` as a match.
        """
        find_all = find_all or bool(kwargs.get("all"))  # Django < 6.1 may still pass all=
        found = self._path()
        if found is not None and str(found.parent) not in finders.searched_locations:
            finders.searched_locations.append(str(found.parent))
        if found is None or path != STATIC_PATH:
            return []
        return [str(found)] if find_all else str(found)

    def list(self, ignore_patterns: Iterable[str] | None) -> Iterator[tuple[str, Storage]]:
        """The one file, with a storage prefixed ``plotly/`` (where collectstatic puts it)."""
        ignored = matches_patterns(FILENAME, list(ignore_patterns or []))
        if self.storage is not None and self._path() is not None and not ignored:
            yield FILENAME, self.storage
