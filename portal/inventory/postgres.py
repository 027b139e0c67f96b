"""PostgreSQL servers reached by DSN: connection test, database discovery, sample databases.

Discovery never lists templates, the maintenance database ``postgres``, Strongroom's own database
(and its ``test_`` twin) or any ``test_*`` database: the lab shares one cluster with Strongroom and
with test runs. Backups use ``ConnectionParams.env()`` for ``pg_dump`` (the password travels in
``PGPASSWORD``, never on the command line).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

import psycopg
from django.conf import settings
from psycopg import sql

CONNECT_TIMEOUT = 5
MAINTENANCE_DATABASE = "postgres"
# PostgreSQL identifiers Strongroom creates: letters, digits, underscores; start with a letter or _.
DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class ConnectionParams:
    host: str
    port: int
    user: str
    password: str = field(default="", repr=False)
    dbname: str = MAINTENANCE_DATABASE

    def with_database(self, dbname: str) -> "ConnectionParams":
        return ConnectionParams(self.host, self.port, self.user, self.password, dbname)

    def kwargs(self) -> dict:
        args = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": self.dbname,
            "connect_timeout": CONNECT_TIMEOUT,
            "application_name": "strongroom",
        }
        if self.password:
            args["password"] = self.password
        return args

    def env(self) -> dict[str, str]:
        """Environment for libpq tools (pg_dump, pg_restore, psql)."""
        env = {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGDATABASE": self.dbname,
            "PGCONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
        }
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
    except psycopg.Error as exc:
        return ConnectionResult(False, message=describe_error(exc, params))
    return ConnectionResult(True, version=version, message=f"PostgreSQL {version} answered at {params.host}:{params.port}.")


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


def discover_databases(params: ConnectionParams) -> list[DatabaseInfo]:
    """User databases on the server (see the module docstring for what is left out)."""
    query = """
        SELECT d.datname, pg_get_userbyid(d.datdba), d.datistemplate, d.datallowconn,
               pg_encoding_to_char(d.encoding),
               CASE WHEN has_database_privilege(d.datname, 'CONNECT')
                    THEN pg_database_size(d.datname) ELSE 0 END
        FROM pg_database d ORDER BY d.datname
    """
    found = []
    with connect(params) as conn:
        for name, owner, is_template, allow_conn, encoding, size in conn.execute(query):
            if not allow_conn or exclusion_reason(name, is_template=is_template):
                continue
            found.append(DatabaseInfo(name, owner, int(size or 0), encoding))
    return found


def database_exists(params: ConnectionParams, name: str) -> bool:
    with connect(params) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def create_database(params: ConnectionParams, name: str) -> None:
    """CREATE DATABASE ... TEMPLATE template0 (an empty database, as restores need)."""
    with connect(params, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))


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
