"""Settings for the test suite: the project's settings with test-only secrets filled in.

The database and channel layer still come from ``DATABASE_URL`` and ``REDIS_URL``, so the same
suite runs on SQLite + in-memory and on PostgreSQL + Redis (see ``tests/matrix.py``).
"""

import os
import tempfile

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key-0123456789-abcdefghijklmnop")
os.environ.setdefault("CALLSITE_ACS_SHARED_SECRET", "tests-only-acs-secret-0123456789")
# The test client and the test servers speak plain HTTP (DEBUG is off, so CALLSITE_HTTPS
# would default to on); tests/callsite/test_deploy_check.py checks the HTTPS settings.
os.environ.setdefault("CALLSITE_HTTPS", "0")
# Deterministic recognition unless a test asks for a real backend.
os.environ.setdefault("CALLSITE_RECOGNIZER", "fake")
# Recordings go to a directory of this run's own (its test servers inherit it).
os.environ.setdefault("CALLSITE_RECORDINGS_DIR", tempfile.mkdtemp(prefix="callsite-recordings-"))

from callsite.settings import *  # noqa: F403

# Fast hashing: the suite creates users in many tests.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# One test database per pytest process, so two runs on one machine never share one.
_default = DATABASES["default"]  # noqa: F405
_test_name = str(_default.get("TEST", {}).get("NAME") or f"test_{_default['NAME']}")
_default.setdefault("TEST", {})["NAME"] = (
    _test_name.replace(".sqlite3", f"_{os.getpid()}.sqlite3")
    if _test_name.endswith(".sqlite3")
    else f"{_test_name}_{os.getpid()}"
)

# The cache's keys (API throttle counts) are this process's own, so tests can delete them
# without touching anything else in the Redis database (see tests.helpers.clear_cache).
CACHES["default"]["KEY_PREFIX"] = f"callsite-test-{os.getpid()}.cache"  # noqa: F405

# Pages name static files by their plain names unless a test collected them into a directory
# of its own (CALLSITE_STATIC_ROOT): a collection left in ./staticfiles by an earlier
# collectstatic would otherwise serve stale files to the tests.
if not os.environ.get("CALLSITE_STATIC_ROOT"):
    STATIC_ROOT = BASE_DIR / "test-artifacts" / "static-uncollected"  # noqa: F405
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
