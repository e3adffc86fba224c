"""The static files pages load: the vendored plotly.js bundle is the pinned one, and a page
names collected files by their hashed names (plain names where nothing was collected)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django.test import override_settings

from dashboard.staticstorage import StaticStorage

BASIC_SHA256 = "99784e3abfb07b142a15e521a439e6d9addceadb3f79553fd24c72774f0649ba"


def test_the_vendored_plotly_bundle_is_the_pinned_release() -> None:
    found = finders.find("vendor/plotly/plotly-basic.min.js")
    assert found
    data = Path(found).read_bytes()
    assert hashlib.sha256(data).hexdigest() == BASIC_SHA256
    assert b"plotly.js (basic - minified) v4.1.1" in data[:200]


def test_uncollected_files_are_named_plainly() -> None:
    """Nothing collected (the test settings' empty STATIC_ROOT): the plain name, no error."""
    assert static("callsite/app.css") == "/static/callsite/app.css"


def test_collected_files_get_hashed_names(tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "callsite").mkdir(parents=True)
    (source / "callsite" / "app.css").write_text("body { color: black; }\n" * 200)
    collected = tmp_path / "collected"
    with override_settings(STATIC_ROOT=str(collected)):
        storage = StaticStorage(location=str(collected))
        storage.save("callsite/app.css", (source / "callsite" / "app.css").open("rb"))
        found = {"callsite/app.css": (storage, "callsite/app.css")}
        processed = list(storage.post_process(found))
        assert processed
        url = storage.url("callsite/app.css")
        assert url.startswith("/static/callsite/app.")
        assert url != "/static/callsite/app.css"
        assert (collected / url.removeprefix("/static/")).exists()
        assert (collected / (url.removeprefix("/static/") + ".gz")).exists()
