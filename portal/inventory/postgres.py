"""PostgreSQL servers reached by DSN: connection test, database discovery, sample databases.

Discovery never lists templates, the maintenance database ``postgres``, Strongroom's own database
(and its ``test_`` twin) or any ``test_*`` database: the lab shares one cluster with Strongroom and
with test runs. ``survey_databases`` says, for a backup, which databases the server's login can dump
and why it skips each other one (Azure's admin login is not a superuser). Backups use
``ConnectionParams.env()`` for the tools (the password travels in ``PGPASSWORD``, never on the
command line), and ``StatementWatch`` so a tool waiting on a lock fails instead of hanging.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import re
import threading
from dataclasses import dataclass, field

import psycopg
from django.conf import settings
from psycopg import sql

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5
MAINTENANCE_DATABASE = "postgres"
APPLICATION_NAME = "strongroom"
# PostgreSQL identifiers Strongroom creates: letters, digits, underscores; start with a letter or _.
DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class ToolTimeouts:
    """Seconds a tool's statement may wait for a lock, and may run at all (settings STRONGROOM_PG_*)."""

    lock_wait: float
    statement: float

    @property
    def lock_wait_ms(self) -> int:
        return max(1, int(self.lock_wait * 1000))

    @property
    def statement_ms(self) -> int:
        return max(1, int(self.statement * 1000))


def tool_timeouts() -> ToolTimeouts:
    return ToolTimeouts(float(settings.STRONGROOM_PG_LOCK_WAIT_TIMEOUT), float(settings.STRONGROOM_PG_STATEMENT_TIMEOUT))


@dataclass(frozen=True)
class ConnectionParams:
    host: str
    port: int
    user: str
    password: str = field(default="", repr=False)
    dbname: str = MAINTENANCE_DATABASE
    # Tells a job's sessions apart in pg_stat_activity (StatementWatch finds them by it).
    application_name: str = APPLICATION_NAME
    # The tools' session timeouts (PGOPTIONS in env()); None for Strongroom's own connections.
    timeouts: ToolTimeouts | None = None

    def with_database(self, dbname: str) -> "ConnectionParams":
        return dataclasses.replace(self, dbname=dbname)

    def with_application(self, name: str) -> "ConnectionParams":
        return dataclasses.replace(self, application_name=name[:63])

    def with_timeouts(self, timeouts: ToolTimeouts | None) -> "ConnectionParams":
        return dataclasses.replace(self, timeouts=timeouts)

    def kwargs(self) -> dict:
        args = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": self.dbname,
            "connect_timeout": CONNECT_TIMEOUT,
            "application_name": self.application_name,
        }
        if self.password:
            args["password"] = self.password
        return args

    def env(self) -> dict[str, str]:
        """Environment for libpq tools (pg_dump, pg_restore, psql).

        With ``timeouts``, PGOPTIONS sets the session's lock and statement timeouts. pg_dumpall and
        psql keep them; pg_dump and pg_restore reset both to 0 when they start, which is why their
        runs also get ``--lock-wait-timeout`` (pg_dump) and a `StatementWatch`."""
        env = {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGDATABASE": self.dbname,
            "PGCONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
            "PGAPPNAME": self.application_name,
        }
        if self.timeouts is not None:
            env["PGOPTIONS"] = (f"-c lock_timeout={self.timeouts.lock_wait_ms} "
                                f"-c statement_timeout={self.timeouts.statement_ms}")
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    @property
    def display(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"


def connect(params: ConnectionParams, *, autocommit: bool = False) -> psycopg.Connection:
    return psycopg.connect(**params.kwargs(), autocommit=autocommit)


@dataclass(frozen=True)
class ConnectionResult:
    ok: bool
    version: str = ""
    message: str = ""


def describe_error(exc: Exception, params: ConnectionParams) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"Could not connect to {params.host}:{params.port} as '{params.user}': {text}"


def test_connection(params: ConnectionParams) -> ConnectionResult:
    try:
        with connect(params) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
    except psycopg.Error as exc:
        return ConnectionResult(False, message=describe_error(exc, params))
    login = (f"as '{params.user}', a superuser" if superuser else
             f"as '{params.user}', not a superuser (as Azure's admin login): a backup skips the databases it may not "
             "read and names them in the job")
    return ConnectionResult(True, version=version, message=f"PostgreSQL {version} answered at {params.host}:{params.port} "
                            f"{login}. Role passwords are never backed up.")


test_connection.__test__ = False  # not a pytest test


def strongroom_database_names() -> set[str]:
    """Strongroom's own database and its test twin, whichever is configured now."""
    db = settings.DATABASES["default"]
    names = set()
    if "postgresql" in db.get("ENGINE", ""):
        name = str(db.get("NAME") or "")
        if name:
            names.add(name)
            names.add(name[5:] if name.startswith("test_") else f"test_{name}")
        test_name = (db.get("TEST") or {}).get("NAME")
        if test_name:
            names.add(test_name)
    return names


def exclusion_reason(name: str, *, is_template: bool = False) -> str | None:
    """Why discovery leaves this database out, or None when it is a user database."""
    if is_template or name in ("template0", "template1"):
        return "a template database"
    if name == MAINTENANCE_DATABASE:
        return "the maintenance database"
    if name in strongroom_database_names():
        return "Strongroom's own database"
    if name.startswith("test_"):
        return "a test database"
    return None


@dataclass(frozen=True)
class DatabaseInfo:
    name: str
    owner: str
    size_bytes: int
    encoding: str


# A server registered with "only the login's own databases" (a training sandbox on a shared cluster) sees
# the databases its login owns, as an Azure flexible server sees only its own: others are not listed.
_OWNED_ONLY = "WHERE NOT %(owned_only)s OR pg_has_role(d.datdba, 'MEMBER')"


def discover_databases(params: ConnectionParams, *, owned_only: bool = False) -> list[DatabaseInfo]:
    """User databases on the server (see the module docstring for what is left out)."""
    query = f"""
        SELECT d.datname, pg_get_userbyid(d.datdba), d.datistemplate, d.datallowconn,
               pg_encoding_to_char(d.encoding),
               CASE WHEN has_database_privilege(d.datname, 'CONNECT')
                    THEN pg_database_size(d.datname) ELSE 0 END
        FROM pg_database d {_OWNED_ONLY} ORDER BY d.datname
    """
    found = []
    with connect(params) as conn:
        for name, owner, is_template, allow_conn, encoding, size in conn.execute(query, {"owned_only": owned_only}):
            if not allow_conn or exclusion_reason(name, is_template=is_template):
                continue
            found.append(DatabaseInfo(name, owner, int(size or 0), encoding))
    return found


@dataclass(frozen=True)
class LoginInfo:
    """The server login's own role attributes (Azure's admin login: CREATEDB, CREATEROLE, no superuser)."""

    name: str
    superuser: bool
    create_db: bool
    create_role: bool
    bypass_rls: bool


def login_info(params: ConnectionParams) -> LoginInfo:
    with connect(params) as conn:
        row = conn.execute("SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls "
                           "FROM pg_roles WHERE rolname = current_user").fetchone()
    return LoginInfo(*row)


@dataclass(frozen=True)
class DatabaseSurvey:
    """One database of the server as a backup sees it: dumped, or skipped for ``skip_reason``."""

    name: str
    owner: str
    size_bytes: int
    encoding: str
    skip_reason: str | None = None
    is_template: bool = False


_UNREADABLE_SCHEMAS = """
    SELECT n.nspname FROM pg_namespace n
    WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
      AND NOT has_schema_privilege(n.oid, 'USAGE')
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                      AND d.objid = n.oid AND d.deptype = 'e')
    ORDER BY 1
"""
# Tables and sequences pg_dump reads (and locks); members of extensions are dumped as CREATE EXTENSION.
_UNREADABLE_RELATIONS = """
    SELECT format('%I.%I', n.nspname, c.relname),
           NOT has_table_privilege(c.oid, 'SELECT') AS no_select,
           c.relrowsecurity AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE')) AS rls
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'S', 'm')
      AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'e')
    ORDER BY 1
"""


def _some(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return f"{shown} and {len(names) - limit} more" if len(names) > limit else shown


def unreadable_reason(params: ConnectionParams, login: LoginInfo) -> str | None:
    """Why ``login`` cannot dump ``params.dbname`` completely, or None when it can.

    pg_dump needs USAGE on every schema and SELECT on every table and sequence; with row-level
    security it refuses (row_security=off) rather than dump only the rows the login may see."""
    if login.superuser:
        return None
    try:
        with connect(params) as conn:
            schemas = [r[0] for r in conn.execute(_UNREADABLE_SCHEMAS)]
            relations = conn.execute(_UNREADABLE_RELATIONS).fetchall()
    except psycopg.Error as exc:
        return f"the login '{login.name}' cannot connect to it ({describe_error(exc, params)})"
    if schemas:
        return f"the login '{login.name}' has no USAGE on the schema(s) {_some(schemas)}"
    no_select = [name for name, missing, _rls in relations if missing]
    if no_select:
        return f"the login '{login.name}' has no SELECT on {len(no_select)} table(s) or sequence(s): {_some(no_select)}"
    rls = [name for name, _missing, rls in relations if rls]
    if rls and not login.bypass_rls:
        return (f"row-level security would hide rows of {_some(rls)} from the login '{login.name}' "
                "(a dump must hold every row)")
    return None


def survey_databases(params: ConnectionParams, *, owned_only: bool = False) -> list[DatabaseSurvey]:
    """Every database of the server, each either to be dumped (``skip_reason`` None) or skipped and why."""
    login = login_info(params)
    query = f"""
        SELECT d.datname, pg_get_userbyid(d.datdba), d.datistemplate, d.datallowconn,
               pg_encoding_to_char(d.encoding), has_database_privilege(d.datname, 'CONNECT'),
               CASE WHEN has_database_privilege(d.datname, 'CONNECT') THEN pg_database_size(d.datname) ELSE 0 END
        FROM pg_database d {_OWNED_ONLY} ORDER BY d.datname
    """
    with connect(params) as conn:
        rows = conn.execute(query, {"owned_only": owned_only}).fetchall()
    found = []
    for name, owner, is_template, allow_conn, encoding, can_connect, size in rows:
        excluded = exclusion_reason(name, is_template=is_template)
        if excluded:
            reason = f"it is {excluded}"
        elif not allow_conn:
            reason = "it does not accept connections (datallowconn is off)"
        elif not can_connect:
            reason = f"the login '{login.name}' has no CONNECT privilege on it"
        else:
            reason = unreadable_reason(params.with_database(name), login)
        found.append(DatabaseSurvey(name, owner, int(size or 0), encoding, reason,
                                    is_template=bool(is_template) or name in ("template0", "template1")))
    return found


class StatementWatch:
    """Cancels a tool's statement that waits for a lock, or runs, longer than the timeouts allow.

    pg_dump and pg_restore set ``statement_timeout`` and ``lock_timeout`` to 0 for their sessions,
    whatever PGOPTIONS says, and pg_restore has no ``--lock-wait-timeout``: so a side thread looks at
    the sessions of ``params.application_name`` (and this login) in ``pg_stat_activity`` and cancels
    the statement itself. ``tripped`` then says why, in words a person can act on."""

    def __init__(self, params: ConnectionParams, timeouts: ToolTimeouts, *, interval: float = 0.25):
        self.params, self.timeouts, self.interval = params, timeouts, interval
        self.tripped: tuple[str, str] | None = None  # ("lock" | "statement", description)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"pg-watch-{params.application_name}", daemon=True)

    def __enter__(self) -> "StatementWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    _ACTIVE = """
        SELECT a.pid, a.wait_event_type, extract(epoch FROM clock_timestamp() - a.query_start), a.query,
               pg_blocking_pids(a.pid)
        FROM pg_stat_activity a
        WHERE a.application_name = %s AND a.usename = current_user AND a.state = 'active'
          AND a.pid <> pg_backend_pid()
    """

    def _watch(self) -> None:
        try:
            with connect(self.params, autocommit=True) as conn:
                while not self._stop.wait(self.interval) and self.tripped is None:
                    for pid, wait_type, age, query, blockers in conn.execute(self._ACTIVE, [self.params.application_name]):
                        age = float(age or 0)
                        if wait_type == "Lock" and age > self.timeouts.lock_wait:
                            self.tripped = ("lock", self._lock_text(conn, pid, blockers, age))
                        elif age > self.timeouts.statement:
                            self.tripped = ("statement", f"one statement ran for {age:.0f} s, longer than the statement "
                                            f"timeout of {self.timeouts.statement:g} s: {_short(query)}")
                        if self.tripped:
                            conn.execute("SELECT pg_cancel_backend(%s)", [pid])
                            return
        except psycopg.Error:  # the tools' own timeouts still apply; the backup must not fail for the watch
            logger.warning("Could not watch the statements of %s", self.params.display, exc_info=True)

    def _lock_text(self, conn, pid: int, blockers: list, age: float) -> str:
        relation = conn.execute("SELECT l.relation::regclass::text FROM pg_locks l WHERE l.pid = %s AND NOT l.granted "
                                "AND l.relation IS NOT NULL LIMIT 1", [pid]).fetchone()
        holders = conn.execute("SELECT pid, usename, application_name FROM pg_stat_activity WHERE pid = ANY(%s) "
                               "ORDER BY pid", [list(blockers or [])]).fetchall()
        held_by = "; ".join(f"pid {p}, user '{u}'" + (f", application '{a}'" if a else "") for p, u, a in holders)
        what = f"the table {relation[0]}" if relation else "a lock"
        return (f"waited {age:.0f} s for {what}, held by another session ({held_by or 'unknown'}), longer than the "
                f"lock-wait timeout of {self.timeouts.lock_wait:g} s")


def _short(query: str, limit: int = 160) -> str:
    text = " ".join((query or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def database_exists(params: ConnectionParams, name: str) -> bool:
    with connect(params) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def create_database(params: ConnectionParams, name: str) -> None:
    """CREATE DATABASE ... TEMPLATE template0 OWNER the login (an empty database, as restores need).

    A login with CREATEDB but no superuser (Azure's admin) can do this, and owns what it restores."""
    with connect(params, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 OWNER {}").format(
            sql.Identifier(name), sql.Identifier(params.user)))


def drop_database(params: ConnectionParams, name: str) -> None:
    if exclusion_reason(name):
        raise ValueError(f"Refusing to drop {name}: it is {exclusion_reason(name)}.")
    with connect(params, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --- the sample schema ----------------------------------------------------------------------------

SAMPLE_SCHEMA = [
    "CREATE SCHEMA sales",
    "CREATE SCHEMA inventory",
    "CREATE SCHEMA hr",
    """CREATE TABLE sales.customers (
        id integer PRIMARY KEY, name text NOT NULL, email text NOT NULL, country text NOT NULL,
        created_at timestamptz NOT NULL)""",
    """CREATE TABLE sales.orders (
        id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES sales.customers(id),
        ordered_at timestamptz NOT NULL, total numeric(12,2) NOT NULL, status text NOT NULL)""",
    """CREATE TABLE inventory.products (
        id integer PRIMARY KEY, sku text UNIQUE NOT NULL, name text NOT NULL, price numeric(10,2) NOT NULL)""",
    """CREATE TABLE inventory.stock (
        product_id integer NOT NULL REFERENCES inventory.products(id), warehouse text NOT NULL,
        quantity integer NOT NULL, PRIMARY KEY (product_id, warehouse))""",
    """CREATE TABLE hr.employees (
        id integer PRIMARY KEY, name text NOT NULL, title text NOT NULL, hired_on date NOT NULL)""",
    "CREATE VIEW sales.order_totals AS SELECT customer_id, count(*) AS orders, sum(total) AS spent "
    "FROM sales.orders GROUP BY customer_id",
]

_FIRST = ["Ada", "Ben", "Chloé", "Dmitri", "Eve", "Farah", "Gus", "Hana", "Ivo", "Jun", "Kai", "Léa"]
_LAST = ["Ng", "Okafor", "Müller", "Silva", "Tanaka", "Novak", "Haddad", "Kowalski", "Díaz", "Berg"]
_COUNTRIES = ["US", "DE", "FR", "JP", "BR", "IN", "NG", "SE"]
_PRODUCTS = ["Bolt", "Bracket", "Cable", "Drive", "Fan", "Gasket", "Hinge", "Lamp", "Sensor", "Valve"]


def sample_rows(seed: int) -> dict[str, list[tuple]]:
    """Deterministic rows for the sample schema."""
    import datetime as dt

    rng = random.Random(f"pg-sample:{seed}")
    base = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    customers = [
        (i, f"{rng.choice(_FIRST)} {rng.choice(_LAST)}", f"customer{i}@example.com", rng.choice(_COUNTRIES),
         base + dt.timedelta(days=rng.randrange(365)))
        for i in range(1, 121)
    ]
    orders = [
        (i, rng.randrange(1, 121), base + dt.timedelta(hours=rng.randrange(24 * 400)),
         round(rng.uniform(5, 900), 2), rng.choice(["Placed", "Shipped", "Delivered", "Returned"]))
        for i in range(1, 601)
    ]
    products = [(i, f"SKU-{i:04d}", f"{rng.choice(_PRODUCTS)} {i}", round(rng.uniform(1, 250), 2)) for i in range(1, 61)]
    stock = [(p, w, rng.randrange(0, 500)) for p in range(1, 61) for w in ("east", "west")]
    employees = [
        (i, f"{rng.choice(_FIRST)} {rng.choice(_LAST)}", rng.choice(["Engineer", "Analyst", "Manager", "Clerk"]),
         (base - dt.timedelta(days=rng.randrange(3000))).date())
        for i in range(1, 41)
    ]
    return {
        "sales.customers": customers,
        "sales.orders": orders,
        "inventory.products": products,
        "inventory.stock": stock,
        "hr.employees": employees,
    }


def load_sample_schema(params: ConnectionParams, seed: int) -> dict[str, int]:
    """Create the sample schemas and tables in ``params.dbname`` and fill them. Returns row counts."""
    rows = sample_rows(seed)
    with connect(params) as conn:
        with conn.transaction():
            for statement in SAMPLE_SCHEMA:
                conn.execute(statement)
            with conn.cursor() as cur:
                for table, values in rows.items():
                    schema, name = table.split(".")
                    placeholders = sql.SQL(", ").join(sql.Placeholder() * len(values[0]))
                    cur.executemany(
                        sql.SQL("INSERT INTO {}.{} VALUES ({})").format(
                            sql.Identifier(schema), sql.Identifier(name), placeholders
                        ),
                        values,
                    )
    return {table: len(values) for table, values in rows.items()}


def table_counts(params: ConnectionParams) -> dict[str, int]:
    """Row counts of every table outside the system schemas: a quick way to compare databases."""
    with connect(params) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') "
            "ORDER BY 1, 2"
        ).fetchall()
        counts = {}
        for schema, name in tables:
            counts[f"{schema}.{name}"] = conn.execute(
                sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(name))
            ).fetchone()[0]
    return counts
