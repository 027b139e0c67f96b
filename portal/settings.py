"""Strongroom settings: one module, every value from the environment with a safe default.

Embedded defaults (nothing set): SQLite in WAL mode, Celery's filesystem transport and all data
under ./var, so `make run` works on a fresh machine. DATABASE_URL and CELERY_BROKER_URL switch to
PostgreSQL and Redis.
"""

import datetime as dt
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from portal.env import check_master_key, ensure_private_dir, ensure_private_file, env_bool, env_choice, env_int, env_list, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("STRONGROOM_VAR_DIR", str(BASE_DIR / "var")))

# Django's debug pages (the whole URL conf on every 404) only when asked for, in either mode.
DEBUG = env_bool("DEBUG", False)
# Two modes. "lab" (what `make run` uses): training labs, demo users, persona switching, the lab clock and
# keys generated under var/ on first start. "production" (the default): none of those; keys, hosts and
# TLS settings must be given, and `manage.py check --deploy` is clean.
STRONGROOM_MODE = env_choice("STRONGROOM_MODE", ("lab", "production"), "lab" if DEBUG else "production")
STRONGROOM_LAB_MODE = STRONGROOM_MODE == "lab"
PRODUCTION = not STRONGROOM_LAB_MODE

# var/ holds the SQLite file, the generated keys and the demo passwords: nobody else may read it.
ensure_private_dir(VAR_DIR)
SECRET_KEY = env_secret("SECRET_KEY", generate=STRONGROOM_LAB_MODE, generated_file=VAR_DIR / "secret_key")
# The platform key: encrypts secrets at rest and wraps every vault store's data key. 32 random bytes, as
# 64 hex digits or base64 (`python -c 'import secrets; print(secrets.token_hex(32))'`).
STRONGROOM_MASTER_KEY = env_secret(
    "STRONGROOM_MASTER_KEY", generate=STRONGROOM_LAB_MODE, generated_file=VAR_DIR / "master_key",
    validate=check_master_key, generator=lambda: secrets.token_hex(32),
)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if STRONGROOM_LAB_MODE else [])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS is required in production mode: the host names the portal is reached by, comma-separated "
        "(e.g. ALLOWED_HOSTS=backup.example.com)."
    )
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
    "csp",
    "axes",  # before security: its sign-in failure receiver reads what axes decided (security.signin)
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
    "csp.middleware.CSPMiddleware",  # before axes: the lockout page gets the policy too
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out sign-in into the lockout page (429)
]

# Content-Security-Policy, the same in both modes (the browser tests run in lab mode and fail on any CSP
# violation): scripts only from static/ (htmx with allowEval off, behaviour in static/strongroom.js, no
# inline script or on* handler), nothing from another site, no framing. Inline style attributes remain.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

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
    ensure_private_file(VAR_DIR / "strongroom.sqlite3")  # SQLite gives its -wal and -shm files the same mode
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
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The sign-in throttle first (it refuses a locked-out username and address before any password is checked;
# security.signin), then Django's accounts.
AUTHENTICATION_BACKENDS = [
    "security.signin.SignInThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "portal:home"
LOGOUT_REDIRECT_URL = "login"

# Sessions end after STRONGROOM_SESSION_HOURS, and in production when the browser closes.
STRONGROOM_SESSION_HOURS = env_int("STRONGROOM_SESSION_HOURS", 8)
SESSION_COOKIE_AGE = STRONGROOM_SESSION_HOURS * 3600
SESSION_EXPIRE_AT_BROWSER_CLOSE = PRODUCTION

# Sign-in throttling (django-axes; security.signin): after STRONGROOM_SIGNIN_FAILURE_LIMIT failed sign-ins of
# one username from one address, that username is locked for that address (other addresses still get in) for
# STRONGROOM_SIGNIN_LOCKOUT_MINUTES, or until an Owner unlocks it (Security > Sign-in lockouts). The portal's
# /signin/ and /admin/login/ alike. STRONGROOM_SIGNIN_BURST_FAILURES failed sign-ins within
# STRONGROOM_SIGNIN_BURST_MINUTES (of one username, or across the installation) raise one alert.
STRONGROOM_SIGNIN_FAILURE_LIMIT = env_int("STRONGROOM_SIGNIN_FAILURE_LIMIT", 5)
STRONGROOM_SIGNIN_LOCKOUT_MINUTES = env_int("STRONGROOM_SIGNIN_LOCKOUT_MINUTES", 30)
STRONGROOM_SIGNIN_BURST_FAILURES = env_int("STRONGROOM_SIGNIN_BURST_FAILURES", 10)
STRONGROOM_SIGNIN_BURST_MINUTES = env_int("STRONGROOM_SIGNIN_BURST_MINUTES", 5)
# How many reverse proxies in front of the portal append to X-Forwarded-For. 0: the header is ignored and the
# client's address is the connection's (REMOTE_ADDR); N: the address the outermost of the N proxies saw.
STRONGROOM_TRUSTED_PROXIES = env_int("STRONGROOM_TRUSTED_PROXIES", 0)
AXES_FAILURE_LIMIT = STRONGROOM_SIGNIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = dt.timedelta(minutes=STRONGROOM_SIGNIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # a lockout ends when it said it would
AXES_RESET_ON_SUCCESS = True  # a successful sign-in forgets that username's earlier failures from its address
AXES_CLIENT_IP_CALLABLE = "security.signin.client_address"  # honours STRONGROOM_TRUSTED_PROXIES
AXES_LOCKOUT_CALLABLE = "portal.views.account.locked_out"  # the lockout page, in the portal's look
AXES_DISABLE_ACCESS_LOG = True  # the activity log records sign-in failures and lockouts
AXES_ENABLE_ADMIN = False  # unlocking is an Owner's guarded operation in the portal, not an admin edit
AXES_VERBOSE = False
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "password", "old_password", "new_password1",
                             "new_password2", "csrfmiddlewaretoken", "client_secret", "client_assertion"]

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
# Several hosts (README): the queue of the host holding STRONGROOM_DATA_ROOT. Jobs of vaults whose store is
# Local go there; jobs of vaults whose store is in an S3 bucket go to the default queue (any host). Unset: all
# jobs go to the default queue (one host).
STRONGROOM_LOCAL_STORE_QUEUE = env_str("STRONGROOM_LOCAL_STORE_QUEUE", "")
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
# Where geo-redundant vaults keep their secondary-region copy (the paired region's stores): in production
# another disk or host, never inside STRONGROOM_DATA_ROOT (a system check warns). Unset, a folder tree beside
# the data root (``<data root>-secondary``), which a lab may use but a real deployment should not.
STRONGROOM_SECONDARY_ROOT = Path(env_str("STRONGROOM_SECONDARY_ROOT", "")) if env_str("STRONGROOM_SECONDARY_ROOT", "") else None
# The vault-archive tier's own root (a colder disk or host in production); unset, `archive` beside the data
# root (vaults.storage.archive_root). Never a folder inside the standard stores' root.
STRONGROOM_ARCHIVE_ROOT = Path(env_str("STRONGROOM_ARCHIVE_ROOT")) if env_str("STRONGROOM_ARCHIVE_ROOT", "") else None
# Existing folders and images may be attached only below these roots (never /etc, /dev, ...).
STRONGROOM_ATTACH_ROOTS = [Path(p) for p in env_list("STRONGROOM_ATTACH_ROOTS", [])]
# The PostgreSQL cluster training-lab sandboxes make their servers on (labs.sandboxes.cluster_admin): each
# sandbox gets its own non-superuser login and database there, created and dropped by this admin login.
STRONGROOM_LAB_POSTGRES_HOST = env_str("STRONGROOM_LAB_POSTGRES_HOST", "127.0.0.1")
STRONGROOM_LAB_POSTGRES_PORT = env_int("STRONGROOM_LAB_POSTGRES_PORT", 5432)
STRONGROOM_LAB_POSTGRES_USER = env_str("STRONGROOM_LAB_POSTGRES_USER", "postgres")
# The demo users' password (lab mode). Unset, `seed_lab` generates one per user and installation and writes
# them once to var/demo-passwords.txt (0600); set it to give a classroom one password of its own.
STRONGROOM_DEMO_PASSWORD = env_str("STRONGROOM_DEMO_PASSWORD", "")
STRONGROOM_DEMO_PASSWORDS_FILE = VAR_DIR / "demo-passwords.txt"
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

# Each virtual network's DNS resolver (`manage.py dns_responder`, started by `make run`) answers on its own
# loopback address (127.53.<n>.1) and this UDP port.
STRONGROOM_DNS_PORT = env_int("STRONGROOM_DNS_PORT", 5353)
# The directory (tenant) id the token endpoint answers for (portal.api.tokens.tenant_id): derived from the master key if unset.
STRONGROOM_TENANT_ID = env_str("STRONGROOM_TENANT_ID", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # axes: its warnings (a failure, a lockout) are kept; the activity log has each with its words.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# Behind a TLS proxy (production): HTTPS only, secure cookies, HSTS. Each can be turned off for a proxy that
# does it itself; `manage.py check --deploy` then says so.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("STRONGROOM_TLS_PROXY", PRODUCTION) else None
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", PRODUCTION)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", PRODUCTION)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", PRODUCTION)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
