"""PostgreSQL server pages: servers (by connection details), their databases, and sample databases."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal.inventory import forms, services
from portal.inventory.models import PostgresDatabase, PostgresServer
from portal.inventory.views.network import datasource_network_view, subnet_choices
from portal.inventory.views.generic import Kind, add_child_view, blade_with_form, create_view, delete_view, list_view
from portal.shortcuts import confirmed_delete, safe_next, visible
from security import operations as ops

SERVER = Kind(
    PostgresServer, "server", ops.POSTGRES_READ, "portal:postgres_server_detail",
    delete=ops.POSTGRES_DELETE, related=("resource_group__subscription", "region"),
    abilities=(("can_refresh", ops.POSTGRES_USE_ADMIN_LOGIN), ("can_create_database", ops.POSTGRES_DATABASE_WRITE)),
    write=ops.POSTGRES_WRITE, label="PostgreSQL server", plural="PostgreSQL servers",
    list_url="portal:postgres_server_list", create_url="portal:postgres_server_create",
)
DATABASE = Kind(
    PostgresDatabase, "database", ops.POSTGRES_DATABASE_READ, "portal:postgres_database_detail", related=("server",)
)


def _created(request, server) -> None:
    """A new server is tested at once: the message says whether Strongroom could reach it."""
    result = services.refresh_postgres_server(request.principal, server)
    if result.ok:
        messages.success(request, f"Server '{server.name}' added. {result.message}")
    else:
        messages.warning(request, f"Server '{server.name}' added, but: {result.message}")


postgres_server_list = list_view(SERVER, template="portal/inventory/postgres_server_list.html")
postgres_server_create = create_view(
    SERVER,
    form_class=forms.PostgresServerForm,
    template="portal/inventory/postgres_server_create.html",
    create=services.create_postgres_server,
    created=_created,
    form_kwargs=subnet_choices,
)


@login_required
def postgres_server_detail(request, pk):
    server = SERVER.get(request, pk)
    context = SERVER.context(request, server, database_count=server.databases.count())
    return render(request, "portal/inventory/postgres_server_detail.html", context)


@login_required
def postgres_server_databases(request, pk, form=None):
    server = SERVER.get(request, pk)
    databases = visible(request.principal, server.databases.all(), ops.POSTGRES_DATABASE_READ)
    context = SERVER.context(request, server, "databases", databases=databases)
    return blade_with_form(request, "portal/inventory/postgres_server_databases.html", context, form,
                           forms.DatabaseForm(initial={"name": "sample_sales"}))


@login_required
@require_POST
def postgres_server_refresh(request, pk):
    server = SERVER.get(request, pk)
    result = services.refresh_postgres_server(request.principal, server)
    if result.ok:
        messages.success(request, result.message)
    else:
        messages.error(request, result.message)
    return redirect(safe_next(request, reverse("portal:postgres_server_detail", args=[server.pk])))


postgres_database_create = add_child_view(
    SERVER,
    form_class=forms.DatabaseForm,
    create=services.create_sample_database,
    message="Sample database '{child.name}' created with schemas sales, inventory and hr.",
    done_url=lambda server, database: reverse("portal:postgres_server_databases", args=[server.pk]),
    blade=postgres_server_databases,
)


@login_required
def postgres_database_detail(request, pk):
    database = DATABASE.get(request, pk)
    return redirect(f"{reverse('portal:postgres_server_databases', args=[database.server_id])}#db-{database.pk}")


@login_required
@require_POST
def postgres_database_delete(request, pk):
    """Drop a database from its row on the Databases blade (the name typed there confirms it)."""
    database = DATABASE.get(request, pk)
    dropped, error = confirmed_delete(
        request, database, kind="database", delete=lambda: services.delete_database(request.principal, database)
    )
    if error:
        messages.error(request, error)
    elif dropped:
        messages.success(request, f"Database '{database.name}' dropped.")
    return redirect("portal:postgres_server_databases", pk=database.server_id)


postgres_server_delete = delete_view(
    SERVER,
    noun="server",
    delete=services.delete_postgres_server,
    warning=lambda server: (
        f"Only Strongroom's record of the server is removed; PostgreSQL on {server.host}:{server.port} "
        "and its databases are not touched."
    ),
)


postgres_server_network = datasource_network_view(SERVER, "portal/inventory/_server_base.html")
