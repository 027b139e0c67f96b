"""Shared fixtures and helpers: the lab's tenancy and personas, data roots under tmp_path, hypothesis
profiles, Celery workers (a thread, or processes of their own), waiting for a condition, guards for a
block, a form-wizard driver, and the PostgreSQL login."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings as hypothesis_settings

hypothesis_settings.register_profile(
    "ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.register_profile("dev", max_examples=10, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _data_roots(settings, tmp_path):
    """Every test writes its real data under its own temporary folder."""
    settings.STRONGROOM_DATA_ROOT = tmp_path / "data"
    settings.STRONGROOM_ATTACH_ROOTS = [tmp_path / "attach"]
    settings.STRONGROOM_LAB_MODE = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.STRONGROOM_LAB_LARGE_VOLUME_MIB = 16  # the lab's large volume, kept small in tests
    (tmp_path / "attach").mkdir()


# STRONGROOM_FROZEN_DATE runs every test marked `date_sensitive` as if the real clock read a fixed
# moment (time-machine, ticking from there). It takes one moment or a comma-separated list, each ISO
# 8601 with an optional "@<IANA zone>" that also sets the process time zone (TZ) for that run, e.g.
#   STRONGROOM_FROZEN_DATE="2028-02-29T12:00:00+00:00,2027-03-28T00:59:00+00:00@Europe/Berlin"
# With a list, each marked test runs once per moment in one session (ids "frozen=<moment>").
# scripts/date_matrix.sh does that in CI: a Monday, a Sunday, 29 February, 31 December 23:59 UTC and a
# European DST change. The lab clock (security.clock) adds its offset to Django's timezone.now(),
# which time-machine moves, so both clocks travel together.
FROZEN_DATE = os.environ.get("STRONGROOM_FROZEN_DATE", "").strip()


def frozen_moments() -> list:
    """The moments STRONGROOM_FROZEN_DATE names, aware (in their zone when one is given)."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    moments = []
    for entry in filter(None, (e.strip() for e in FROZEN_DATE.split(","))):
        text, _, zone = entry.partition("@")
        moment = dt.datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.timezone.utc)
        if zone:
            moment = moment.astimezone(ZoneInfo(zone))  # time-machine then sets TZ for the travel
        moments.append(moment)
    return moments


def _moment_id(moment) -> str:
    zone = getattr(moment.tzinfo, "key", "")
    return moment.strftime("%Y-%m-%dT%H:%M%z") + (f"@{zone}" if zone else "")


# Files that are one or two long tests each: they start first, so that on two workers (`--dist loadfile`)
# they do not come last and leave the other worker idle at the end of the run.
RUN_FIRST = (
    "tests/test_bad_input.py", "tests/test_entry_points.py", "tests/browser/test_labs_pairs.py",
    "tests/browser/test_layout.py", "tests/store/test_bench_smoke.py", "tests/api/test_schema_fuzz.py",
    "tests/test_run_script.py",
)


def pytest_collection_modifyitems(config, items):
    first = {path: n for n, path in enumerate(RUN_FIRST)}
    items.sort(key=lambda item: first.get(item.nodeid.split("::", 1)[0], len(first)))  # stable: the rest keep their order


def pytest_generate_tests(metafunc):
    if FROZEN_DATE and metafunc.definition.get_closest_marker("date_sensitive") is not None:
        moments = frozen_moments()
        metafunc.fixturenames.append("frozen_moment")
        metafunc.parametrize("frozen_moment", moments, ids=[f"frozen={_moment_id(m)}" for m in moments])


@pytest.fixture(autouse=True)
def _frozen_date(request):
    """Travel to the test's frozen moment (see above); nothing unless STRONGROOM_FROZEN_DATE is set."""
    callspec = getattr(request.node, "callspec", None)
    moment = callspec.params.get("frozen_moment") if callspec is not None else None
    if moment is None:
        yield None
        return
    import time_machine

    with time_machine.travel(moment, tick=True) as traveller:
        yield traveller


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """A transactional test's flush empties the activity log with TRUNCATE, which its PostgreSQL trigger
    refuses unless the session says otherwise (security/migrations/0005_activity_log_chain.py): the test
    databases' connections say so; an installation's never do."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if "postgresql" in database["ENGINE"]:
        options = database.setdefault("OPTIONS", {})
        options["options"] = f"{options.get('options', '')} -c strongroom.allow_activity_log_truncate=on".strip()


@pytest.fixture(autouse=True)
def _fresh_clock():
    from security import clock

    clock.forget_cached_offset()
    yield
    clock.forget_cached_offset()


@pytest.fixture
def steady_clock(monkeypatch):
    """The lab clock's offset read once and kept for the test: a query count then does not depend on whether
    a request fell after the offset's one-second cache ran out (security.clock.CACHE_SECONDS)."""
    from security import clock

    monkeypatch.setattr(clock, "CACHE_SECONDS", 3600.0)
    clock.forget_cached_offset()
    clock.offset_seconds()
    return clock


@pytest.fixture(autouse=True)
def _drop_sandbox_logins(request):
    """Training sandboxes made in a test leave no login or database on the shared PostgreSQL cluster
    (dropped before the test's rows go, so that they can still be listed)."""
    names = request.fixturenames
    database = next((f for f in ("transactional_db", "db") if f in names), None)
    if database is None and request.node.get_closest_marker("django_db") is None:
        yield
        return
    if database is not None:
        request.getfixturevalue(database)
    yield
    from labs.models import Sandbox
    from labs.sandboxes import drop_pg_login

    for login in Sandbox.objects.exclude(pg_login="").values_list("pg_login", flat=True):
        try:
            drop_pg_login(login)
        except Exception:  # noqa: BLE001 - the cluster may be down in the test that says so
            pass


@pytest.fixture
def lab(db):
    """The seeded lab tenancy: trainer (Owner and Lab Instructor at /), subscriptions, resource groups, personas,
    the demo trainee (Lab Trainee at /)."""
    from portal.lab import seed_tenancy

    return seed_tenancy()


@pytest.fixture
def trainer(lab):
    return lab.trainer


def _persona(key: str):
    """The fixture for one lab persona's principal, named after it (``backup-admin`` -> ``backup_admin``)."""

    @pytest.fixture(name=key.replace("-", "_"))
    def principal(lab):
        return lab.personas[key].principal

    return principal


backup_admin = _persona("backup-admin")
backup_operator = _persona("backup-operator")
security_admin = _persona("security-admin")
reader = _persona("reader")
outsider = _persona("outsider")


@pytest.fixture
def signed_in_client(client):
    """A test client signed in as a lab user: ``signed_in_client(principal)``."""

    def sign_in(principal):
        client.force_login(principal.user)
        return client

    return sign_in


@pytest.fixture
def worker(request, worker_id):
    """A real Celery worker thread consuming from Redis on a queue of this test's own.

    A queue per xdist worker and process, so parallel test processes never run each other's tasks.
    In CI (STRONGROOM_REQUIRE_SERVICES) a missing Redis broker fails the test instead of skipping it.
    """
    from django.conf import settings

    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        if os.environ.get("STRONGROOM_REQUIRE_SERVICES"):
            pytest.fail(f"CI must run {request.node.nodeid} against Redis (CELERY_BROKER_URL).")
        pytest.skip("No Redis broker configured (CELERY_BROKER_URL); run `make test` with Redis up.")
    from celery.contrib.testing.worker import start_worker

    from portal.celery import app

    with own_default_queue("strongroom-test", worker_id) as queue:
        with start_worker(app, pool="solo", perform_ping_check=False, queues=[queue], loglevel="WARNING"):
            yield app


@contextlib.contextmanager
def own_default_queue(prefix: str, worker_id: str):
    """Point the Celery app's default queue at a queue of this test process's own (so parallel test
    processes never run each other's tasks), and back again afterwards."""
    from portal.celery import app

    queue = f"{prefix}-{worker_id}-{os.getpid()}"
    previous = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    try:
        yield queue
    finally:
        app.conf.task_default_queue = previous


@pytest.fixture
def process_worker_queue(worker_id):
    """A queue of this test's own for Celery worker *processes* (``WorkerProcess``). They share the test
    database with this process, so they need PostgreSQL as well as Redis; CI fails without them."""
    from django.conf import settings
    from django.db import connection

    if not settings.CELERY_BROKER_URL.startswith("redis://") or connection.vendor != "postgresql":
        if os.environ.get("STRONGROOM_REQUIRE_SERVICES"):
            pytest.fail("CI must run worker processes against PostgreSQL (DATABASE_URL) and Redis (CELERY_BROKER_URL).")
        pytest.skip("A worker process needs PostgreSQL (DATABASE_URL) and Redis (CELERY_BROKER_URL).")
    with own_default_queue("strongroom-process", worker_id) as queue:
        yield queue


class WorkerProcess:
    """A Celery worker process on ``queue``, told the test database's name and this test's data roots,
    in a process group of its own (so SIGKILL takes the whole of it, like the OOM killer); its output
    goes to ``log_path``."""

    def __init__(self, queue: str, log_path: Path, *, extra_env: dict | None = None, nice: bool = False):
        from django.conf import settings
        from django.db import connection

        db = connection.settings_dict
        env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "STRONGROOM_DATA_ROOT": str(settings.STRONGROOM_DATA_ROOT),
            "STRONGROOM_ATTACH_ROOTS": ",".join(str(p) for p in settings.STRONGROOM_ATTACH_ROOTS),
        }
        if db.get("PASSWORD"):
            env["PGPASSWORD"] = db["PASSWORD"]
        env.update(extra_env or {})
        self.log_path = log_path
        self.log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [*(["nice", "-n", "10"] if nice else []), sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", queue, "-P", "solo", "-c", "1",
             "-n", f"{log_path.stem}@%h", "-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


# --- waiting and processes ------------------------------------------------------------------------


def wait_until(predicate, timeout: float, what: str, *, every: float = 0.05, gave_up=None, explain=None):
    """Poll ``predicate`` until it returns something true (returned) or ``timeout`` seconds pass (an
    AssertionError naming ``what`` and, when given, ``explain()``). ``gave_up()`` true stops early: the
    thing that should make it true has died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if gave_up is not None and gave_up():
            break
        time.sleep(every)
    detail = f"\n{explain()}" if explain is not None else ""
    raise AssertionError(f"Timed out after {timeout} s waiting for {what}.{detail}")


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# --- guards ---------------------------------------------------------------------------------------


def rbac_allows(action) -> bool:
    """Run ``action``: False when the RBAC guard refuses it (no other guard may), True when it goes through."""
    from security.guards import GuardDenied

    try:
        action()
    except GuardDenied as exc:
        assert exc.decision.guard == "RBAC"
        return False
    return True


@contextlib.contextmanager
def refusing(operation: str, refusal, name: str = "test-refusal"):
    """For the block only, a guard that answers ``refusal`` to ``operation`` and lets everything else by."""
    from security.guards import register_guard, unregister_guard

    def guard(principal, op, target, change):
        return refusal if op == operation else None

    register_guard(name, guard, order=90)
    try:
        yield
    finally:
        unregister_guard(name)


# --- form wizards over HTTP -----------------------------------------------------------------------


class WizardDriver:
    """Drives a tabbed form wizard at ``self.url`` (form prefix ``self.prefix``) as a browser would:
    posts the current tab's fields, plus a tab button (``goto``) or raw fields. A subclass opens it."""

    client = url = prefix = response = None

    @property
    def html(self):
        return self.response.content.decode()

    @property
    def current(self):
        return re.search(rf'name="{self.prefix}-current_step" value="([^"]+)"', self.html).group(1)

    def post(self, data=None, goto=None, raw=None):
        payload = {f"{self.prefix}-current_step": self.current}
        payload.update({f"{self.current}-{k}": v for k, v in (data or {}).items()})
        payload.update(raw or {})
        if goto:
            payload["wizard_goto_step"] = goto
        self.response = self.client.post(self.url, payload)
        return self.response


# --- PostgreSQL: the login Azure gives you --------------------------------------------------------


class PgLogin:
    """A non-superuser login (LOGIN CREATEDB CREATEROLE, with a password), as an Azure flexible
    server's admin login is. ``params`` connects as it; ``admin`` is the local superuser."""

    def __init__(self, name: str, password: str, params, admin):
        self.name, self.password, self.params, self.admin = name, password, params, admin

    def server(self, principal, *, resource_group, name, region, **kwargs):
        """Register the local server with this login, through the inventory service."""
        from portal.inventory import services as inv

        return inv.create_postgres_server(principal, resource_group=resource_group, name=name, region=region,
                                          host=self.params.host, port=self.params.port, admin_user=self.name,
                                          password=self.password, **kwargs)


def drop_pg_login(admin, name: str) -> None:
    """Drop every database ``name`` owns, what it owns elsewhere, then the role itself."""
    from psycopg import sql

    from portal.inventory import postgres

    with postgres.connect(admin, autocommit=True) as conn:
        owned = [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE datdba = (SELECT oid FROM pg_roles WHERE rolname = %s)", [name])]
        for database in owned:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone():
            return
        # Objects or grants it still has in other databases (pg_shdepend says where): dropped there first.
        elsewhere = [r[0] for r in conn.execute(
            "SELECT DISTINCT d.datname FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid "
            "WHERE s.refobjid = (SELECT oid FROM pg_roles WHERE rolname = %s)", [name])]
    for database in {*elsewhere, "postgres"}:
        with postgres.connect(admin.with_database(database), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
    with postgres.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def pg_login(worker_id):
    """The login the PostgreSQL tests use by default: one per test worker (unique name), dropped with
    everything it owns at the end. A superuser only where a test is about it."""
    import secrets

    from psycopg import sql

    from portal.inventory import postgres

    admin = postgres.ConnectionParams("127.0.0.1", 5432, "postgres")
    name = f"sr_login_{worker_id}_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(16)
    login = PgLogin(name, password, postgres.ConnectionParams("127.0.0.1", 5432, name, password), admin)
    if not postgres.test_connection(admin).ok:
        # Tests that only register the server still run; those that connect skip (or fail in CI)
        # through their own fixtures (local_postgres, pg_database).
        yield login
        return
    with postgres.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB CREATEROLE NOSUPERUSER PASSWORD {}").format(
            sql.Identifier(name), sql.Literal(password)))
    try:
        yield login
    finally:
        drop_pg_login(admin, name)


@pytest.fixture
def pg_cluster_turn():
    """One test at a time, across the parallel test processes, among those that lock a table on the shared
    PostgreSQL cluster or back up every database a login sees there: a whole-cluster backup would otherwise
    wait on another process's deliberately held lock (and fail UserErrorPostgresLockTimeout)."""
    import fcntl
    import tempfile

    with open(Path(tempfile.gettempdir()) / "strongroom-test-pg-cluster.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def moto_s3():
    """The endpoint URL of a moto S3 server on loopback (one per session; see tests/_s3.py)."""
    from tests._s3 import start_moto

    server, endpoint = start_moto()
    yield endpoint
    server.stop()


@pytest.fixture
def store_backend(request):
    """Where the protection tests' ``vault`` keeps its store: "local" (the default) or "s3" (a fresh
    Object Lock bucket on moto's server). Tests run on both with `tests._s3.BOTH_BACKENDS`."""
    return getattr(request, "param", "local")
