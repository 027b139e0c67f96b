"""Azure Database for PostgreSQL flexible servers: a server is registered by its connection details
(the admin password sealed at rest); its user databases are discovered, or created by Strongroom (sample
databases, restore targets), and only those Strongroom created may be dropped here."""

from __future__ import annotations

import logging
import zlib
from contextlib import contextmanager

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from portal.inventory import naming, postgres
from portal.inventory.models import PostgresDatabase, PostgresServer
from portal.inventory.services.common import forget_assignments, new_resource_id
from portal.inventory.services.network import datasource_region, join_subnet_first
from portal.models import ResourceGroup
from security import clock
from security.audit import guarded
from security.crypto import encrypt_secret
from security.operations import (
    POSTGRES_DATABASE_DELETE,
    POSTGRES_DATABASE_WRITE,
    POSTGRES_DELETE,
    POSTGRES_USE_ADMIN_LOGIN,
    POSTGRES_WRITE,
)

logger = logging.getLogger(__name__)


def create_postgres_server(
    principal,
    *,
    resource_group: ResourceGroup,
    name: str,
    region,
    host: str,
    port: int = 5432,
    admin_user: str,
    password: str = "",
    tags: dict | None = None,
    only_owned_databases: bool = False,
    network_subnet=None,
) -> PostgresServer:
    """Register a PostgreSQL server by its connection details; the password is sealed at rest."""
    name = (name or "").strip()
    host = (host or "").strip()
    admin_user = (admin_user or "").strip()
    target = new_resource_id(resource_group, PostgresServer.RESOURCE_TYPE, name or "-")
    details = {"host": host, "port": port, "adminUser": admin_user}
    join_subnet_first(principal, network_subnet, target, details)
    with guarded(principal, POSTGRES_WRITE, target, details=details) as op:
        naming.validate_postgres_server_name(name)
        region = datasource_region(region, network_subnet, name)
        _check_connection_details(host, port, admin_user)
        if PostgresServer.objects.filter(name__iexact=name).exists():
            raise ValidationError({"name": f"The server name '{name}' is already in use. Choose another name."})
        server = PostgresServer(
            name=name, resource_group=resource_group, region=region, host=host, port=port,
            admin_user=admin_user, tags=tags or {}, only_owned_databases=only_owned_databases,
            network_subnet=network_subnet,
        )
        server.resource_id = server.build_resource_id()
        if password:
            server.password_encrypted = encrypt_secret(password, purpose=server.secret_purpose)
        try:
            with transaction.atomic():
                server.save()
        except IntegrityError as exc:
            raise ValidationError({"name": f"The server name '{name}' is already in use. Choose another name."}) from exc
        op.result_scope = server.resource_id
    return server


def _check_connection_details(host: str, port, admin_user: str) -> None:
    errors = {}
    if not host or len(host) > 255 or any(c.isspace() for c in host) or "/" in host:
        errors["host"] = "Enter a host name or IP address, such as 127.0.0.1 or db.example.com."
    if not isinstance(port, int) or not 1 <= port <= 65535:
        errors["port"] = "Enter a port from 1 to 65535."
    if not naming.POSTGRES_USER.match(admin_user):
        errors["admin_user"] = "Enter the administrator login (1 to 63 characters, starting with a letter or _)."
    if errors:
        raise ValidationError(errors)


def delete_postgres_server(principal, server: PostgresServer) -> None:
    """Remove the server from Strongroom. The PostgreSQL server itself and its data are untouched."""
    with guarded(principal, POSTGRES_DELETE, server) as op:
        forget_assignments(op, server.resource_id, "PostgreSQL server")
        server.delete()


def refresh_postgres_server(principal, server: PostgresServer) -> postgres.ConnectionResult:
    """Test the connection and discover the server's user databases (stored for the pages).

    It logs in with the server's admin login and rewrites what the pages show, so it needs
    ``POSTGRES_USE_ADMIN_LOGIN`` (flexibleServers/write): read-only roles may not start it.
    """
    with guarded(principal, POSTGRES_USE_ADMIN_LOGIN, server, details={"check": "Test connection"}) as op:
        params = server.connection_params()
        result = postgres.test_connection(params)
        now = clock.now()
        server.checked_at = now
        server.connection_status = (
            PostgresServer.ConnectionStatus.SUCCEEDED if result.ok else PostgresServer.ConnectionStatus.FAILED
        )
        server.connection_message = result.message
        if result.ok:
            server.server_version = result.version
            found = _discover_databases(server, params, now)
            if found is not None:
                op.details["databases"] = sorted(found)[:50]
        op.details["connection"] = server.connection_status
        server.save(update_fields=["checked_at", "connection_status", "connection_message", "server_version"])
    return result


def _discover_databases(server: PostgresServer, params, now) -> set[str] | None:
    """Store the user databases the server has now (the names), or None when listing them failed (the
    server's state then says why)."""
    try:
        found = postgres.discover_databases(params, owned_only=server.only_owned_databases)
    except Exception as exc:  # noqa: BLE001 - shown to the user as the server's state
        server.connection_status = PostgresServer.ConnectionStatus.FAILED
        server.connection_message = postgres.describe_error(exc, params)
        return None
    keep = {d.name for d in found}
    server.databases.exclude(name__in=keep).delete()
    for info in found:
        PostgresDatabase.objects.update_or_create(
            server=server,
            name=info.name,
            defaults={
                "owner": info.owner,
                "size_bytes": info.size_bytes,
                "encoding": info.encoding,
                "discovered_at": now,
            },
        )
    return keep


def _database_target(server: PostgresServer, name: str) -> str:
    return f"{server.resource_id}/databases/{name or '-'}"


def _validate_new_database(server: PostgresServer, name: str) -> None:
    naming.validate_postgres_database_name(name)
    reason = postgres.exclusion_reason(name)
    if reason:
        raise ValidationError({"name": f"'{name}' is reserved ({reason}); choose another name."})


@contextmanager
def _new_database(principal, server: PostgresServer, name: str):
    """Guarded: create the empty database ``name`` from template0 on the server, then yield (the
    guarded operation, the server's connection parameters) for the caller to record it."""
    with guarded(principal, POSTGRES_DATABASE_WRITE, _database_target(server, name)) as op:
        _validate_new_database(server, name)
        params = server.connection_params()
        try:
            if postgres.database_exists(params, name):
                raise ValidationError({"name": f"A database named '{name}' already exists on {server.host}:{server.port}."})
            postgres.create_database(params, name)
        except postgres.psycopg.Error as exc:
            raise ValidationError(postgres.describe_error(exc, params)) from exc
        yield op, params


def create_sample_database(principal, server: PostgresServer, *, name: str) -> PostgresDatabase:
    """Create ``name`` from template0 and load the seeded sample schema (schemas, tables, rows)."""
    name = (name or "").strip()
    with _new_database(principal, server, name) as (op, params):
        try:
            counts = postgres.load_sample_schema(params.with_database(name), seed=zlib.crc32(name.encode()))
            info = next((d for d in postgres.discover_databases(params, owned_only=server.only_owned_databases) if d.name == name), None)
            database = PostgresDatabase.objects.create(
                server=server, name=name, is_sample=True, created_by_strongroom=True, discovered_at=clock.now(),
                owner=info.owner if info else server.admin_user, size_bytes=info.size_bytes if info else 0,
                encoding=info.encoding if info else "",
            )
        except BaseException:
            # Nothing half-created: the new database goes again if its schema could not be loaded.
            try:
                postgres.drop_database(params, name)
            except Exception:  # noqa: BLE001
                logger.exception("Could not drop %s after a failed sample load", name)
            raise
        op.details["tables"] = counts
        op.result_scope = database.resource_id
    return database


def create_database(principal, server: PostgresServer, *, name: str) -> PostgresDatabase:
    """Create an empty database from template0 (restores load into one of these)."""
    name = (name or "").strip()
    with _new_database(principal, server, name) as (op, _params):
        database = PostgresDatabase.objects.create(
            server=server, name=name, owner=server.admin_user, created_by_strongroom=True, discovered_at=clock.now()
        )
        op.result_scope = database.resource_id
    return database


def delete_database(principal, database: PostgresDatabase) -> None:
    """Drop the database on the server (Strongroom's own and templates can never be dropped)."""
    with guarded(principal, POSTGRES_DATABASE_DELETE, database) as op:
        if not database.created_by_strongroom:
            raise ValidationError(
                f"Strongroom drops only databases it created (sample databases and restore targets); "
                f"'{database.name}' was found on the server. Drop it with your own PostgreSQL tools if you mean to."
            )
        server = database.server
        params = server.connection_params()
        forget_assignments(op, database.resource_id, "database")
        database.delete()
        try:
            postgres.drop_database(params, database.name)
        except (postgres.psycopg.Error, ValueError) as exc:
            raise ValidationError(f"Could not drop '{database.name}': {exc}") from exc
