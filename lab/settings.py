"""Settings of the Microservices Communication Lab.

Every value a self-hoster may change comes from the environment, with a default
that works on one machine with Redis and RabbitMQ on their standard ports.
"""

import os
from pathlib import Path

import dj_database_url
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-insecure-key-change-me-in-production")
DEBUG = env_bool("DJANGO_DEBUG", True)
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")
CSRF_TRUSTED_ORIGINS = [
    origin for origin in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if origin
]
# Behind a proxy that terminates TLS: trust its X-Forwarded-Proto, redirect plain
# HTTP to HTTPS, tell browsers to stay on HTTPS (HSTS) and send cookies over HTTPS
# only. Off by default, since a direct client could forge the header.
BEHIND_TLS_PROXY = env_bool("DJANGO_BEHIND_TLS_PROXY", False)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", str(365 * 24 * 3600)))
    # Both bind every subdomain of the lab's domain (preload, for years): the owner's call.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
# Where the web port is published (compose's LAB_BIND). On loopback over plain
# HTTP there is no TLS for the HTTPS-only settings to protect, so their deploy
# checks say nothing there; published anywhere else without the TLS proxy, they warn.
LAB_BIND = os.environ.get("LAB_BIND", "127.0.0.1")
if not BEHIND_TLS_PROXY and LAB_BIND in {"127.0.0.1", "localhost", "::1", "[::1]"}:
    SILENCED_SYSTEM_CHECKS = [
        "security.W004",  # SECURE_HSTS_SECONDS
        "security.W008",  # SECURE_SSL_REDIRECT
        "security.W012",  # SESSION_COOKIE_SECURE
        "security.W016",  # CSRF_COOKIE_SECURE
    ]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "lab.users",
    "lab.curriculum",
    "lab.sandboxes",
    "lab.web",
    "lab.classroom",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "lab.csp.ContentSecurityPolicyMiddleware",
    "lab.api_errors.OversizeBodyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "lab.urls"
ASGI_APPLICATION = "lab.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

# SQLite by default (embedded); PostgreSQL when DATABASE_URL says so.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'lab.sqlite3'}"),
        conn_max_age=0,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL and immediate transactions let daphne, the worker and beat share the file.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # The test database is a file too, so that worker and daphne processes
    # started by the tests see what the test wrote.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("LAB_TEST_DATABASE", str(BASE_DIR / "var" / "test.sqlite3"))
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Sign-up and `manage.py labuser --password` both apply these.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    }
}

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
# Tests give each session its own queue so parallel sessions never take each other's tasks.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("LAB_CELERY_QUEUE", "celery")
# Starts, stops and the reconciler go on their own queue, served by their own
# worker threads (scripts/run_lab.py runs one worker per queue), so no number of
# queued runs delays a learner's start. Runs and their records take the default.
LAB_CELERY_CONTROL_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}-control"
# Declared, so a worker started without -Q takes both queues (and has a host).
CELERY_TASK_QUEUES = (
    Queue(CELERY_TASK_DEFAULT_QUEUE, routing_key=CELERY_TASK_DEFAULT_QUEUE),
    Queue(LAB_CELERY_CONTROL_QUEUE, routing_key=LAB_CELERY_CONTROL_QUEUE),
)
CELERY_TASK_ROUTES = {
    f"lab.sandboxes.tasks.{name}": {"queue": LAB_CELERY_CONTROL_QUEUE}
    for name in (
        "sandbox_start_task",
        "sandbox_stop_task",
        "sandbox_ended_task",
        "sandboxes_reconcile",
        "warm_pool_fill_task",
    )
}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "reconcile-sandboxes": {"task": "lab.sandboxes.tasks.sandboxes_reconcile", "schedule": 5.0},
    "sweep-broker": {"task": "lab.sandboxes.tasks.broker_sweep", "schedule": 60.0},
    "expire-guests": {"task": "lab.users.tasks.guests_expire_task", "schedule": 600.0},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    # Reads that need no user stay open; every write needs a user (a session with
    # its CSRF token, or a token). Nothing in the API makes a user.
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    # JSON only, with a nesting limit: a deep document is a 400, not a RecursionError,
    # and any other body is a 415. (daphne's Twisted parses form bodies itself and
    # answers a malformed multipart one with a bare 400 before Django sees it.)
    "DEFAULT_PARSER_CLASSES": ["lab.parsers.DepthLimitedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "lab.api_errors.exception_handler",
    # Per learner (lab/sandboxes/api.py): starts and runs; a run also waits in a
    # queue of LAB_RUNS_QUEUED per sandbox, and past it the API says 429.
    "DEFAULT_THROTTLE_RATES": {
        "sandbox_start": os.environ.get("LAB_RATE_SANDBOX_START", "6/min"),
        "run_create": os.environ.get("LAB_RATE_RUN_CREATE", "30/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Microservices Communication Lab API",
    "DESCRIPTION": "Lessons, sandboxes, experiment runs and faults.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Declares the error responses and the lesson shapes (lab/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "lab.schema.document_errors_and_lessons",
    ],
}
# Deepest JSON document the API and the WebSocket accept (lab/parsers.py).
LAB_JSON_MAX_DEPTH = int(os.environ.get("LAB_JSON_MAX_DEPTH", "32"))
# The debug page hides settings that carry credentials (lab/error_reports.py).
DEFAULT_EXCEPTION_REPORTER_FILTER = "lab.error_reports.CredentialHidingFilter"

# Guests: made only by the "Try as a guest" form, at most this many per client
# address (REMOTE_ADDR) per hour; deleted this many seconds after they joined
# unless a sandbox of theirs is still live or they signed up.
LAB_GUESTS_PER_ADDRESS_PER_HOUR = int(os.environ.get("LAB_GUESTS_PER_ADDRESS_PER_HOUR", "5"))
LAB_GUEST_MAX_AGE = float(os.environ.get("LAB_GUEST_MAX_AGE", str(24 * 3600)))

# Sandboxes: quotas and deadlines (seconds).
LAB_SANDBOXES_PER_LEARNER = int(os.environ.get("LAB_SANDBOXES_PER_LEARNER", "1"))
LAB_SANDBOXES_PER_SITE = int(os.environ.get("LAB_SANDBOXES_PER_SITE", "40"))
# Runs of one sandbox go one at a time; this many more may wait their turn.
LAB_RUNS_QUEUED = int(os.environ.get("LAB_RUNS_QUEUED", "3"))
LAB_SANDBOX_IDLE_TIMEOUT = float(os.environ.get("LAB_SANDBOX_IDLE_TIMEOUT", "900"))
LAB_SANDBOX_HARD_DEADLINE = float(os.environ.get("LAB_SANDBOX_HARD_DEADLINE", "7200"))
# A worker refreshes its heartbeat every KEEPALIVE/3 s; its sandboxes end when
# it has been silent for KEEPALIVE s.
LAB_KEEPALIVE_SECONDS = float(os.environ.get("LAB_KEEPALIVE_SECONDS", "15"))
LAB_WORKDIR = Path(os.environ.get("LAB_WORKDIR", str(BASE_DIR / "var" / "sandboxes")))
LAB_LESSONS_DIR = Path(os.environ.get("LAB_LESSONS_DIR", str(BASE_DIR / "lessons")))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LAB_LOG_LEVEL", "INFO")},
    "loggers": {"daphne": {"level": "WARNING"}, "django.channels.server": {"level": "WARNING"}},
}
