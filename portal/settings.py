"""Strongroom settings: one module, every value from the environment with a safe default.

Embedded defaults (nothing set): SQLite in WAL mode, Celery's filesystem transport and all data
under ./var, so `make run` works on a fresh machine. DATABASE_URL and CELERY_BROKER_URL switch to
PostgreSQL and Redis.
"""

from pathlib import Path

import dj_database_url

from portal.env import env_bool, env_int, env_list, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("STRONGROOM_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_secret("SECRET_KEY", debug=DEBUG, generated_file=VAR_DIR / "secret_key")
# The platform key: encrypts secrets at rest and wraps every vault store's data key.
STRONGROOM_MASTER_KEY = env_secret(
    "STRONGROOM_MASTER_KEY", debug=DEBUG, generated_file=VAR_DIR / "master_key"
)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "formtools",
    "security",
    "portal",
    "vaults",
    "protection",
    "labs",
]

MIDDLEWARE = [
    "portal.middleware.DatabaseUnavailableMiddleware",  # first: a database outage anywhere below is a 503 page
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "portal.middleware.PrincipalMiddleware",
    "portal.shortcuts.GuardDeniedMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

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
                "portal.context_processors.shell",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL", "")
if DATABASE_URL:
    # Health checks: a connection the server closed (a restart) is replaced at the next request
    # instead of failing one request per thread.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "strongroom.sqlite3",
            # Web, worker and beat write at once: WAL, a busy timeout and IMMEDIATE
            # transactions avoid "database is locked".
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "portal:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"

# Email for alerts; the console backend by default so nothing leaves the machine.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "strongroom@localhost")
STRONGROOM_ALERT_EMAILS = env_list("STRONGROOM_ALERT_EMAILS", [])

# Celery: Redis when CELERY_BROKER_URL is set, else the filesystem transport under ./var.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    _queue_dir = VAR_DIR / "broker"
    for _sub in ("in", "processed", "control"):
        (_queue_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "in"),
        "data_folder_out": str(_queue_dir / "in"),
        "processed_folder": str(_queue_dir / "processed"),
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith("redis://"):
    # kombu's Redis transport with the fix for a worker that died when Redis restarted (see portal/broker.py).
    CELERY_BROKER_TRANSPORT = "portal.broker:Transport"
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "strongroom")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker outage of any length must not end a worker: retry for ever (Celery's default gives up after
# 100 tries, then exits). A job running across the outage keeps running: its row, not the broker, says
# where it is, and its late acknowledgement going nowhere is harmless (the claim stops a second run).
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict = {
    # protection: each entry expires before its next run, so a beat that was down does not pile up
    # copies; the tasks are idempotent anyway (unique keys, compare-and-set claims).
    "dispatch-scheduled-backups": {"task": "protection.tasks.dispatch_backups", "schedule": 60.0,
                                   "options": {"expires": 50}},
    # Every 10 s: with a 20 s stale heartbeat, a lost job is handed on within about 35 s.
    "reconcile-jobs": {"task": "protection.tasks.reconcile_jobs", "schedule": 10.0, "options": {"expires": 8}},
    "retention": {"task": "protection.tasks.start_retention", "schedule": 600.0, "options": {"expires": 540}},
    "verify-recovery-points": {"task": "protection.tasks.start_verifies", "schedule": 3600.0,
                               "options": {"expires": 3000}},
    "close-expired-mua-grants": {"task": "security.tasks.close_expired_grants", "schedule": 60.0,
                                 "options": {"expires": 50}},
    # security: the activity log's hash chain, walked whole (about 5 s per 100,000 entries on two busy
    # cores; bench/activity_log.py).
    "verify-activity-log": {"task": "security.tasks.verify_activity_log", "schedule": 3600.0,
                            "options": {"expires": 3000}},
    "purge-soft-deleted": {"task": "protection.tasks.start_purges", "schedule": 600.0, "options": {"expires": 540}},
    # labs: retired training sandboxes whose data the guards kept are tried again (retention ended, the lab
    # clock moved); a job ending in one sends its take-down on at once.
    "take-down-retired-sandboxes": {"task": "labs.tasks.take_down_retired", "schedule": 3600.0,
                                    "options": {"expires": 3000}},
}

# Strongroom
STRONGROOM_DATA_ROOT = Path(env_str("STRONGROOM_DATA_ROOT", str(VAR_DIR / "data")))
# Existing folders and images may be attached only below these roots (never /etc, /dev, ...).
STRONGROOM_ATTACH_ROOTS = [Path(p) for p in env_list("STRONGROOM_ATTACH_ROOTS", [])]
# Lab mode: training labs, demo accounts; a Lab Instructor may play personas and move the lab clock.
STRONGROOM_LAB_MODE = env_bool("STRONGROOM_LAB_MODE", DEBUG)
# The PostgreSQL cluster training-lab sandboxes make their servers on (labs.sandboxes.cluster_admin): each
# sandbox gets its own non-superuser login and database there, created and dropped by this admin login.
STRONGROOM_LAB_POSTGRES_HOST = env_str("STRONGROOM_LAB_POSTGRES_HOST", "127.0.0.1")
STRONGROOM_LAB_POSTGRES_PORT = env_int("STRONGROOM_LAB_POSTGRES_PORT", 5432)
STRONGROOM_LAB_POSTGRES_USER = env_str("STRONGROOM_LAB_POSTGRES_USER", "postgres")
STRONGROOM_DEMO_PASSWORD = env_str("STRONGROOM_DEMO_PASSWORD", "strongroom-lab")
# Seconds a running job may go without a byte or an item moving before it fails with JobStalled, per
# phase (see protection.jobs.runner.DEFAULT_STALL_SECONDS): transfer (reading or writing data), finishing
# (pg_restore building indexes after the last byte), reclaim (garbage collection).
STRONGROOM_JOB_STALL_SECONDS = {
    "transfer": env_int("STRONGROOM_STALL_TRANSFER_SECONDS", 600),
    "finishing": env_int("STRONGROOM_STALL_FINISHING_SECONDS", 3600),
    "reclaim": env_int("STRONGROOM_STALL_RECLAIM_SECONDS", 7200),
}
# PostgreSQL tools (pg_dump, pg_dumpall, pg_restore), in seconds: how long one of their statements may wait
# for a lock (another session holding a table) and how long one statement may run (a single table's
# COPY of a large database can take long). Past either, the job fails with a coded error, never hangs.
STRONGROOM_PG_LOCK_WAIT_TIMEOUT = env_int("STRONGROOM_PG_LOCK_WAIT_TIMEOUT", 60)
STRONGROOM_PG_STATEMENT_TIMEOUT = env_int("STRONGROOM_PG_STATEMENT_TIMEOUT", 3 * 3600)
# The lab's large Elastic SAN volume (vol-large): MiB of generated data, so a backup runs long enough to
# watch and cancel (3 GiB: 22 s the first time, 11 s after, on 2 cores; 8 GiB for about a minute).
STRONGROOM_LAB_LARGE_VOLUME_MIB = env_int("STRONGROOM_LAB_LARGE_VOLUME_MIB", 3072)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
