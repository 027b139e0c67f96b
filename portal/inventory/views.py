"""Inventory pages: storage accounts and blobs, Elastic SAN volumes, PostgreSQL servers.

Thin: reads start from `visible` / `get_visible_or_404` (objects a principal cannot read are 404),
changes go through the services (a refusal becomes the explained 403 page).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from portal.inventory import blobs, forms, services
from portal.inventory import services as svc
from portal.inventory.models import (
    Container,
    ElasticSan,
    PostgresDatabase,
    PostgresServer,
    Snapshot,
    StorageAccount,
    Volume,
    VolumeGroup,
)
from portal.services import resource_groups_for
from portal.shortcuts import can, form_errors_from, get_visible_or_404, safe_next, visible

BLOB_PAGE_LIMIT = 500


def _stats(container) -> tuple[int, int]:
    """(blobs, bytes) for display; a container whose folder is unsafe or gone shows as empty."""
    try:
        return blobs.container_stats(container)
    except (OSError, ValueError):
        return 0, 0


def _with_roots(form, field: str) -> None:
    from django.conf import settings

    roots = ", ".join(str(r) for r in settings.STRONGROOM_ATTACH_ROOTS) or "none configured"
    form.fields[field].help_text += f" Allowed roots: {roots}."


def _confirm_delete(request, obj, *, kind: str, delete, done_url: str, back_url: str, context: dict, warning: str = ""):
    """A "type the name to confirm" page shared by every delete."""
    error = None
    if request.method == "POST":
        if request.POST.get("confirm_name", "").strip() != obj.name:
            error = f"Type the {kind} name '{obj.name}' to confirm."
        else:
            try:
                delete()
            except ValidationError as exc:
                error = " ".join(exc.messages)
            else:
                messages.success(request, f"Deleted {kind} '{obj.name}'.")
                return redirect(done_url)
    return render(
        request,
        "portal/inventory/confirm_delete.html",
        {**context, "obj": obj, "kind": kind, "error": error, "back_url": back_url, "warning": warning},
        status=400 if error else 200,
    )


def _create_page(request, form, template, context):
    return render(request, template, {"form": form, **context}, status=400 if form.is_bound else 200)


# =================================================================================================
# Storage accounts
# =================================================================================================


def _account(request, pk) -> StorageAccount:
    return get_visible_or_404(
        request.principal,
        StorageAccount.objects.select_related("resource_group__subscription", "region"),
        svc.STORAGE_ACCOUNT_READ,
        pk=pk,
    )


def _account_context(request, account, blade):
    p = request.principal
    return {
        "account": account,
        "resource": account,
        "blade": blade,
        "can_delete": can(p, svc.STORAGE_ACCOUNT_DELETE, account.resource_id),
        "can_add_container": can(p, svc.CONTAINER_WRITE, account.resource_id),
    }


@login_required
def storage_account_list(request):
    accounts = visible(
        request.principal,
        StorageAccount.objects.select_related("resource_group__subscription", "region"),
        svc.STORAGE_ACCOUNT_READ,
    )
    return render(
        request,
        "portal/inventory/storage_account_list.html",
        {
            "accounts": accounts,
            "can_create": resource_groups_for(request.principal, svc.STORAGE_ACCOUNT_WRITE).exists(),
        },
    )


@login_required
def storage_account_create(request):
    groups = resource_groups_for(request.principal, svc.STORAGE_ACCOUNT_WRITE)
    form = forms.StorageAccountForm(request.POST or None, resource_groups=groups)
    _with_roots(form, "attach_path")
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        attach = data["attach_path"] if data["data"] == "attach" else ""
        if data["data"] == "attach" and not attach:
            form.add_error("attach_path", "Enter the folder to attach, or choose 'Create a new, empty folder'.")
        else:
            try:
                account = services.create_storage_account(
                    request.principal,
                    resource_group=data["resource_group"],
                    name=data["name"],
                    region=data["region"],
                    hierarchical_namespace=data["hierarchical_namespace"],
                    sku=data["sku"],
                    attach_path=attach,
                )
            except ValidationError as exc:
                form_errors_from(form, exc)
            else:
                messages.success(request, f"Storage account '{account.name}' created.")
                return redirect("portal:storage_account_detail", pk=account.pk)
    return _create_page(request, form, "portal/inventory/storage_account_create.html", {"has_groups": groups.exists()})


@login_required
def storage_account_detail(request, pk):
    account = _account(request, pk)
    containers = list(account.containers.all())
    count = size = 0
    for container in containers:
        c, s = _stats(container)
        count, size = count + c, size + s
    ctx = _account_context(request, account, "overview")
    ctx.update(containers=containers, blob_count=count, blob_bytes=size)
    return render(request, "portal/inventory/storage_account_detail.html", ctx)


@login_required
def storage_account_containers(request, pk, form=None):
    account = _account(request, pk)
    rows = []
    for container in visible(request.principal, account.containers.all(), svc.CONTAINER_READ):
        count, size = _stats(container)
        rows.append({"container": container, "count": count, "size": size})
    ctx = _account_context(request, account, "containers")
    ctx.update(rows=rows, form=form or forms.ContainerForm(), show_form=form is not None or "new" in request.GET)
    return render(request, "portal/inventory/storage_account_containers.html", ctx, status=400 if form else 200)


@login_required
@require_POST
def container_create(request, pk):
    account = _account(request, pk)
    form = forms.ContainerForm(request.POST)
    if form.is_valid():
        try:
            container = services.create_container(request.principal, account, name=form.cleaned_data["name"])
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, f"Container '{container.name}' created.")
            return redirect("portal:storage_account_containers", pk=account.pk)
    return storage_account_containers(request, pk, form=form)


@login_required
def storage_account_delete(request, pk):
    account = _account(request, pk)
    warning = (
        f"The attached folder {account.attached_path} is left in place; only the storage account is removed."
        if account.is_attached
        else "Every container and blob in the account is deleted with it."
    )
    return _confirm_delete(
        request,
        account,
        kind="storage account",
        delete=lambda: services.delete_storage_account(request.principal, account),
        done_url=reverse("portal:storage_account_list"),
        back_url=reverse("portal:storage_account_detail", args=[account.pk]),
        context=_account_context(request, account, ""),
        warning=warning,
    )


# --- containers and blobs ---------------------------------------------------------------------------


def _container(request, pk) -> Container:
    return get_visible_or_404(
        request.principal,
        Container.objects.select_related("account__resource_group__subscription", "account__region"),
        svc.CONTAINER_READ,
        pk=pk,
    )


def _container_context(request, container, *, prefix="", upload_form=None, list_error=None):
    p = request.principal
    can_read = svc.can_use_blobs(p, container, svc.BLOB_READ)
    listing, error, truncated = [], list_error, False
    total_bytes = 0
    if can_read and error is None:
        try:
            for blob in svc.list_blobs(p, container, prefix):
                if len(listing) >= BLOB_PAGE_LIMIT:
                    truncated = True
                    break
                listing.append(blob)
                total_bytes += blob.size
        except ValidationError as exc:
            error = " ".join(exc.messages)
        except blobs.fs.UnsafePath as exc:
            error = f"{exc} The container's folder cannot be read until this is fixed."
    return {
        "container": container,
        "account": container.account,
        "resource": container,
        "blade": "overview",
        "prefix": prefix,
        "blobs": listing,
        "total_bytes": total_bytes,
        "truncated": truncated,
        "limit": BLOB_PAGE_LIMIT,
        "list_error": error,
        "can_read_blobs": can_read,
        "can_write_blobs": svc.can_use_blobs(p, container, svc.BLOB_WRITE),
        "can_delete_blobs": svc.can_use_blobs(p, container, svc.BLOB_DELETE),
        "can_delete": can(p, svc.CONTAINER_DELETE, container.resource_id),
        "upload_form": upload_form or forms.UploadForm(initial={"prefix": prefix.rpartition("/")[0]}),
        "show_upload": upload_form is not None or "upload" in request.GET,
    }


@login_required
def container_detail(request, pk):
    container = _container(request, pk)
    prefix = request.GET.get("prefix", "")
    ctx = _container_context(request, container, prefix=prefix)
    template = "portal/inventory/container_detail.html"
    if request.htmx and request.htmx.target == "blob-list":
        template += "#blob-list"
    return render(request, template, ctx)


@login_required
@require_POST
def container_upload(request, pk):
    container = _container(request, pk)
    form = forms.UploadForm(request.POST, request.FILES)
    if form.is_valid():
        files = form.cleaned_data["files"]
        uploads = [services.Upload(f.name, f) for f in files]
        try:
            written = services.upload_blobs(
                request.principal, container, uploads,
                prefix=form.cleaned_data["prefix"], overwrite=form.cleaned_data["overwrite"],
            )
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            total = sum(size for _, size in written)
            messages.success(request, f"Uploaded {len(written)} blob{'s' if len(written) != 1 else ''} ({total:,} bytes).")
            prefix = blobs.validate_prefix(form.cleaned_data["prefix"], field=None)
            url = reverse("portal:container_detail", args=[container.pk])
            return redirect(f"{url}?{urlencode({'prefix': prefix.rstrip('/') + '/'})}" if prefix else url)
    ctx = _container_context(request, container, upload_form=form)
    return render(request, "portal/inventory/container_detail.html", ctx, status=400)


@login_required
@require_GET
def blob_download(request, pk):
    container = _container(request, pk)
    name = request.GET.get("name", "")
    try:
        handle = services.open_blob(request.principal, container, name)
    except ValidationError as exc:
        raise Http404(" ".join(exc.messages)) from exc
    except (blobs.BlobNotFound, blobs.fs.UnsafePath) as exc:
        raise Http404(f"The blob '{name}' does not exist.") from exc
    return FileResponse(handle, as_attachment=True, filename=name.rpartition("/")[2])


@login_required
@require_POST
def blob_delete(request, pk):
    container = _container(request, pk)
    names = request.POST.getlist("names")
    prefix = request.POST.get("prefix", "")
    try:
        count = services.delete_blobs(request.principal, container, names)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Deleted {count} blob{'s' if count != 1 else ''}.")
    url = reverse("portal:container_detail", args=[container.pk])
    return redirect(f"{url}?{urlencode({'prefix': prefix})}" if prefix else url)


@login_required
def container_delete(request, pk):
    container = _container(request, pk)
    count, size = _stats(container)
    return _confirm_delete(
        request,
        container,
        kind="container",
        delete=lambda: services.delete_container(request.principal, container),
        done_url=reverse("portal:storage_account_containers", args=[container.account_id]),
        back_url=reverse("portal:container_detail", args=[container.pk]),
        context={"resource": container, "container": container, "account": container.account},
        warning=f"Its {count} blob{'s' if count != 1 else ''} ({size:,} bytes) are deleted with it.",
    )


# =================================================================================================
# Elastic SAN
# =================================================================================================


def _san(request, pk) -> ElasticSan:
    return get_visible_or_404(
        request.principal,
        ElasticSan.objects.select_related("resource_group__subscription", "region"),
        svc.ELASTIC_SAN_READ,
        pk=pk,
    )


def _san_context(request, san, blade):
    p = request.principal
    return {
        "san": san,
        "resource": san,
        "blade": blade,
        "can_delete": can(p, svc.ELASTIC_SAN_DELETE, san.resource_id),
        "can_add_group": can(p, svc.VOLUME_GROUP_WRITE, san.resource_id),
    }


@login_required
def elastic_san_list(request):
    sans = visible(
        request.principal,
        ElasticSan.objects.select_related("resource_group__subscription", "region"),
        svc.ELASTIC_SAN_READ,
    )
    return render(
        request,
        "portal/inventory/elastic_san_list.html",
        {"sans": sans, "can_create": resource_groups_for(request.principal, svc.ELASTIC_SAN_WRITE).exists()},
    )


@login_required
def elastic_san_create(request):
    groups = resource_groups_for(request.principal, svc.ELASTIC_SAN_WRITE)
    form = forms.ElasticSanForm(request.POST or None, resource_groups=groups)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            san = services.create_elastic_san(
                request.principal,
                resource_group=data["resource_group"],
                name=data["name"],
                region=data["region"],
                sku=data["sku"],
                base_size_tib=data["base_size_tib"],
                extended_capacity_size_tib=data["extended_capacity_size_tib"],
            )
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, f"Elastic SAN '{san.name}' created. Add a volume group next.")
            return redirect("portal:elastic_san_detail", pk=san.pk)
    return _create_page(request, form, "portal/inventory/elastic_san_create.html", {"has_groups": groups.exists()})


def _san_volumes(request, san):
    return visible(
        request.principal,
        Volume.objects.filter(volume_group__elastic_san=san).select_related("volume_group"),
        svc.VOLUME_READ,
    ).order_by("volume_group__name", "name")


@login_required
def elastic_san_detail(request, pk):
    san = _san(request, pk)
    ctx = _san_context(request, san, "overview")
    all_volumes = list(Volume.objects.filter(volume_group__elastic_san=san))
    ctx.update(
        group_count=san.volume_groups.count(),
        volume_count=len(all_volumes),
        provisioned_gib=sum(v.size_gib for v in all_volumes),
        capacity_gib=san.total_size_tib * 1024,
    )
    return render(request, "portal/inventory/elastic_san_detail.html", ctx)


@login_required
def elastic_san_volume_groups(request, pk, form=None):
    san = _san(request, pk)
    groups = visible(request.principal, san.volume_groups.all(), svc.VOLUME_GROUP_READ)
    ctx = _san_context(request, san, "volume_groups")
    ctx.update(
        groups=[{"group": g, "volumes": g.volumes.count()} for g in groups],
        form=form or forms.VolumeGroupForm(),
        show_form=form is not None or "new" in request.GET,
    )
    return render(request, "portal/inventory/elastic_san_volume_groups.html", ctx, status=400 if form else 200)


@login_required
def elastic_san_volumes(request, pk):
    san = _san(request, pk)
    ctx = _san_context(request, san, "volumes")
    ctx.update(volumes=_san_volumes(request, san), groups=san.volume_groups.all())
    return render(request, "portal/inventory/elastic_san_volumes.html", ctx)


@login_required
@require_POST
def volume_group_create(request, pk):
    san = _san(request, pk)
    form = forms.VolumeGroupForm(request.POST)
    if form.is_valid():
        try:
            group = services.create_volume_group(request.principal, san, name=form.cleaned_data["name"])
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, f"Volume group '{group.name}' created. Create a volume in it next.")
            return redirect("portal:volume_group_detail", pk=group.pk)
    return elastic_san_volume_groups(request, pk, form=form)


@login_required
def elastic_san_delete(request, pk):
    san = _san(request, pk)
    return _confirm_delete(
        request,
        san,
        kind="Elastic SAN",
        delete=lambda: services.delete_elastic_san(request.principal, san),
        done_url=reverse("portal:elastic_san_list"),
        back_url=reverse("portal:elastic_san_detail", args=[san.pk]),
        context=_san_context(request, san, ""),
        warning="An Elastic SAN that still has volume groups is not deleted: delete its volumes and volume groups first.",
    )


def _group(request, pk) -> VolumeGroup:
    return get_visible_or_404(
        request.principal,
        VolumeGroup.objects.select_related("elastic_san__resource_group__subscription", "elastic_san__region"),
        svc.VOLUME_GROUP_READ,
        pk=pk,
    )


def _group_context(request, group, blade="overview"):
    p = request.principal
    return {
        "group": group,
        "san": group.elastic_san,
        "resource": group,
        "blade": blade,
        "can_delete": can(p, svc.VOLUME_GROUP_DELETE, group.resource_id),
        "can_add_volume": can(p, svc.VOLUME_WRITE, group.resource_id),
    }


@login_required
def volume_group_detail(request, pk):
    group = _group(request, pk)
    ctx = _group_context(request, group)
    ctx["volumes"] = visible(request.principal, group.volumes.all(), svc.VOLUME_READ)
    return render(request, "portal/inventory/volume_group_detail.html", ctx)


@login_required
def volume_group_delete(request, pk):
    group = _group(request, pk)
    return _confirm_delete(
        request,
        group,
        kind="volume group",
        delete=lambda: services.delete_volume_group(request.principal, group),
        done_url=reverse("portal:elastic_san_volume_groups", args=[group.elastic_san_id]),
        back_url=reverse("portal:volume_group_detail", args=[group.pk]),
        context=_group_context(request, group, ""),
        warning="A volume group that still has volumes is not deleted: delete its volumes first.",
    )


@login_required
def volume_create(request, pk):
    group = _group(request, pk)
    form = forms.VolumeForm(request.POST or None)
    _with_roots(form, "attach_path")
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        attach = data["attach_path"] if data["source"] == "attach" else ""
        if data["source"] == "attach" and not attach:
            form.add_error("attach_path", "Enter the image file to attach, or choose 'New empty volume'.")
        elif data["source"] == "new" and not data["size_gib"]:
            form.add_error("size_gib", "Enter the volume size in GiB.")
        else:
            try:
                volume = services.create_volume(
                    request.principal, group, name=data["name"],
                    size_gib=None if attach else data["size_gib"], attach_path=attach,
                )
            except ValidationError as exc:
                form_errors_from(form, exc)
            else:
                messages.success(request, f"Volume '{volume.name}' created.")
                return redirect("portal:volume_detail", pk=volume.pk)
    ctx = _group_context(request, group, "")
    ctx["form"] = form
    return render(request, "portal/inventory/volume_create.html", ctx, status=400 if form.is_bound else 200)


def _volume(request, pk) -> Volume:
    return get_visible_or_404(
        request.principal,
        Volume.objects.select_related(
            "volume_group__elastic_san__resource_group__subscription", "volume_group__elastic_san__region",
            "activity_operation",
        ),
        svc.VOLUME_READ,
        pk=pk,
    )


def _volume_context(request, volume):
    p = request.principal
    return {
        "volume": volume,
        "group": volume.volume_group,
        "san": volume.volume_group.elastic_san,
        "resource": volume,
        "blade": "overview",
        "can_write": can(p, svc.VOLUME_WRITE, volume.resource_id),
        "can_checksum": can(p, svc._JOB_ACTION[Volume.Activity.COMPUTE_CHECKSUM], volume.resource_id),
        "can_delete": can(p, svc.VOLUME_DELETE, volume.resource_id),
        "stale": volume.activity_running and svc._activity_stale(volume),
        **_backup_reading(volume),
    }


def _backup_reading(volume) -> dict:
    """Whether a backup holds the volume now (writes wait meanwhile)."""
    from portal.inventory import volumes

    return {"backup_reading": volumes.held_by_backup(volume.image_path),
            "waiting_for_backup": volume.activity_running and volume.activity_message == svc.WAITING_FOR_BACKUP}


@login_required
def volume_detail(request, pk):
    volume = _volume(request, pk)
    template = "portal/inventory/volume_detail.html"
    if request.htmx and request.htmx.target == "volume-data":
        template += "#volume-data"
    return render(request, template, _volume_context(request, volume))


@login_required
@require_POST
def volume_start_job(request, pk, activity):
    volume = _volume(request, pk)
    try:
        services.start_volume_job(request.principal, volume, activity)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.info(request, f"{Volume.Activity(activity).label} started. This page updates as it runs.")
    return redirect("portal:volume_detail", pk=volume.pk)


@login_required
def volume_delete(request, pk):
    volume = _volume(request, pk)
    ctx = _volume_context(request, volume)
    ctx["blade"] = ""
    return _confirm_delete(
        request,
        volume,
        kind="volume",
        delete=lambda: services.delete_volume(request.principal, volume),
        done_url=reverse("portal:volume_group_detail", args=[volume.volume_group_id]),
        back_url=reverse("portal:volume_detail", args=[volume.pk]),
        context=ctx,
        warning=(
            f"The attached image {volume.attached_path} is left in place."
            if volume.is_attached
            else f"Its image file and all {volume.size_gib} GiB of data on it are deleted."
        ),
    )


@login_required
def snapshot_detail(request, pk):
    snapshot = get_visible_or_404(
        request.principal,
        Snapshot.objects.select_related("resource_group__subscription", "region", "source_volume"),
        svc.SNAPSHOT_READ,
        pk=pk,
    )
    return render(
        request,
        "portal/inventory/snapshot_detail.html",
        {"snapshot": snapshot, "resource": snapshot, "blade": "overview"},
    )


# =================================================================================================
# PostgreSQL flexible servers
# =================================================================================================


def _server(request, pk) -> PostgresServer:
    return get_visible_or_404(
        request.principal,
        PostgresServer.objects.select_related("resource_group__subscription", "region"),
        svc.POSTGRES_READ,
        pk=pk,
    )


def _server_context(request, server, blade):
    p = request.principal
    return {
        "server": server,
        "resource": server,
        "blade": blade,
        "can_delete": can(p, svc.POSTGRES_DELETE, server.resource_id),
        "can_refresh": can(p, svc.POSTGRES_USE_ADMIN_LOGIN, server.resource_id),
        "can_create_database": can(p, svc.POSTGRES_DATABASE_WRITE, server.resource_id),
    }


@login_required
def postgres_server_list(request):
    servers = visible(
        request.principal,
        PostgresServer.objects.select_related("resource_group__subscription", "region"),
        svc.POSTGRES_READ,
    )
    return render(
        request,
        "portal/inventory/postgres_server_list.html",
        {"servers": servers, "can_create": resource_groups_for(request.principal, svc.POSTGRES_WRITE).exists()},
    )


@login_required
def postgres_server_create(request):
    groups = resource_groups_for(request.principal, svc.POSTGRES_WRITE)
    form = forms.PostgresServerForm(request.POST or None, resource_groups=groups)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            server = services.create_postgres_server(
                request.principal,
                resource_group=data["resource_group"],
                name=data["name"],
                region=data["region"],
                host=data["host"],
                port=data["port"],
                admin_user=data["admin_user"],
                password=data["password"],
            )
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            result = services.refresh_postgres_server(request.principal, server)
            if result.ok:
                messages.success(request, f"Server '{server.name}' added. {result.message}")
            else:
                messages.warning(request, f"Server '{server.name}' added, but: {result.message}")
            return redirect("portal:postgres_server_detail", pk=server.pk)
    return _create_page(request, form, "portal/inventory/postgres_server_create.html", {"has_groups": groups.exists()})


@login_required
def postgres_server_detail(request, pk):
    server = _server(request, pk)
    ctx = _server_context(request, server, "overview")
    ctx["database_count"] = server.databases.count()
    return render(request, "portal/inventory/postgres_server_detail.html", ctx)


@login_required
def postgres_server_databases(request, pk, form=None):
    server = _server(request, pk)
    ctx = _server_context(request, server, "databases")
    ctx.update(
        databases=visible(request.principal, server.databases.all(), svc.POSTGRES_DATABASE_READ),
        form=form or forms.DatabaseForm(initial={"name": "sample_sales"}),
        show_form=form is not None or "new" in request.GET,
    )
    return render(request, "portal/inventory/postgres_server_databases.html", ctx, status=400 if form else 200)


@login_required
@require_POST
def postgres_server_refresh(request, pk):
    server = _server(request, pk)
    result = services.refresh_postgres_server(request.principal, server)
    if result.ok:
        messages.success(request, result.message)
    else:
        messages.error(request, result.message)
    return redirect(safe_next(request, reverse("portal:postgres_server_detail", args=[server.pk])))


@login_required
@require_POST
def postgres_database_create(request, pk):
    server = _server(request, pk)
    form = forms.DatabaseForm(request.POST)
    if form.is_valid():
        try:
            database = services.create_sample_database(request.principal, server, name=form.cleaned_data["name"])
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, f"Sample database '{database.name}' created with schemas sales, inventory and hr.")
            return redirect("portal:postgres_server_databases", pk=server.pk)
    return postgres_server_databases(request, pk, form=form)


@login_required
def postgres_database_detail(request, pk):
    database = get_visible_or_404(
        request.principal, PostgresDatabase.objects.select_related("server"), svc.POSTGRES_DATABASE_READ, pk=pk
    )
    return redirect(f"{reverse('portal:postgres_server_databases', args=[database.server_id])}#db-{database.pk}")


@login_required
@require_POST
def postgres_database_delete(request, pk):
    database = get_visible_or_404(
        request.principal, PostgresDatabase.objects.select_related("server"), svc.POSTGRES_DATABASE_READ, pk=pk
    )
    if request.POST.get("confirm_name", "").strip() != database.name:
        messages.error(request, f"Type the database name '{database.name}' to confirm.")
    else:
        try:
            services.delete_database(request.principal, database)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"Database '{database.name}' dropped.")
    return redirect("portal:postgres_server_databases", pk=database.server_id)


@login_required
def postgres_server_delete(request, pk):
    server = _server(request, pk)
    return _confirm_delete(
        request,
        server,
        kind="server",
        delete=lambda: services.delete_postgres_server(request.principal, server),
        done_url=reverse("portal:postgres_server_list"),
        back_url=reverse("portal:postgres_server_detail", args=[server.pk]),
        context=_server_context(request, server, ""),
        warning=f"Only Strongroom's record of the server is removed; PostgreSQL on {server.host}:{server.port} and its databases are not touched.",
    )
