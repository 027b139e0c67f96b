"""Storage account pages: accounts, their containers, and the blobs in a container."""

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
from portal.inventory.models import Container, StorageAccount
from portal.inventory.views.network import datasource_network_view, subnet_choices
from portal.inventory.views.generic import (
    Kind,
    add_child_view,
    blade_with_form,
    create_view,
    delete_view,
    list_view,
    submit,
    with_attach_roots,
)
from portal.shortcuts import report_outcome, visible
from security import operations as ops

BLOB_PAGE_LIMIT = 500

ACCOUNT = Kind(
    StorageAccount, "account", ops.STORAGE_ACCOUNT_READ, "portal:storage_account_detail",
    delete=ops.STORAGE_ACCOUNT_DELETE, related=("resource_group__subscription", "region"),
    abilities=(("can_add_container", ops.CONTAINER_WRITE),),
    write=ops.STORAGE_ACCOUNT_WRITE, label="storage account", plural="storage accounts",
    list_url="portal:storage_account_list", create_url="portal:storage_account_create",
)
CONTAINER = Kind(
    Container, "container", ops.CONTAINER_READ, "portal:container_detail",
    delete=ops.CONTAINER_DELETE, related=("account__resource_group__subscription", "account__region"),
    parents=(("account", "account"),),
)


def _stats(container) -> tuple[int, int]:
    """(blobs, bytes) for display; a container whose folder is unsafe or gone shows as empty."""
    try:
        return blobs.container_stats(container)
    except (OSError, ValueError):
        return 0, 0


# --- storage accounts ---------------------------------------------------------------------------------


def _create_account(principal, *, data: str, attach_path: str, **fields) -> StorageAccount:
    """The form's "data" choice says whether its folder is attached or a new one made."""
    attach = attach_path if data == "attach" else ""
    if data == "attach" and not attach:
        raise ValidationError({"attach_path": "Enter the folder to attach, or choose 'Create a new, empty folder'."})
    return services.create_storage_account(principal, attach_path=attach, **fields)


storage_account_list = list_view(ACCOUNT, template="portal/inventory/storage_account_list.html")
storage_account_create = create_view(
    ACCOUNT,
    form_class=forms.StorageAccountForm,
    template="portal/inventory/storage_account_create.html",
    create=_create_account,
    created=lambda request, account: messages.success(request, f"Storage account '{account.name}' created."),
    prepare=lambda form: with_attach_roots(form, "attach_path"),
    form_kwargs=subnet_choices,
)


@login_required
def storage_account_detail(request, pk):
    account = ACCOUNT.get(request, pk)
    containers = list(account.containers.all())
    count = size = 0
    for container in containers:
        c, s = _stats(container)
        count, size = count + c, size + s
    context = ACCOUNT.context(request, account, containers=containers, blob_count=count, blob_bytes=size)
    return render(request, "portal/inventory/storage_account_detail.html", context)


@login_required
def storage_account_containers(request, pk, form=None):
    account = ACCOUNT.get(request, pk)
    rows = []
    for container in visible(request.principal, account.containers.all(), ops.CONTAINER_READ):
        count, size = _stats(container)
        rows.append({"container": container, "count": count, "size": size})
    context = ACCOUNT.context(request, account, "containers", rows=rows)
    return blade_with_form(request, "portal/inventory/storage_account_containers.html", context, form,
                           forms.ContainerForm())


container_create = add_child_view(
    ACCOUNT,
    form_class=forms.ContainerForm,
    create=services.create_container,
    message="Container '{child.name}' created.",
    done_url=lambda account, container: reverse("portal:storage_account_containers", args=[account.pk]),
    blade=storage_account_containers,
)


storage_account_delete = delete_view(
    ACCOUNT,
    noun="storage account",
    delete=services.delete_storage_account,
    warning=lambda account: (
        f"The attached folder {account.attached_path} is left in place; only the storage account is removed."
        if account.is_attached
        else "Every container and blob in the account is deleted with it."
    ),
)


# --- containers and blobs -------------------------------------------------------------------------------


def _blob_listing(principal, container, prefix: str) -> dict:
    """The first BLOB_PAGE_LIMIT blobs under ``prefix`` and their total size, or why they cannot be listed."""
    listing, error, truncated, total_bytes = [], None, False, 0
    try:
        for blob in services.list_blobs(principal, container, prefix):
            if len(listing) >= BLOB_PAGE_LIMIT:
                truncated = True
                break
            listing.append(blob)
            total_bytes += blob.size
    except ValidationError as exc:
        error = " ".join(exc.messages)
    except blobs.fs.UnsafePath as exc:
        error = f"{exc} The container's folder cannot be read until this is fixed."
    return {"blobs": listing, "total_bytes": total_bytes, "truncated": truncated, "list_error": error}


def _container_context(request, container, *, prefix="", upload_form=None):
    principal = request.principal
    can_read = services.can_use_blobs(principal, container, ops.BLOB_READ)
    listing = _blob_listing(principal, container, prefix) if can_read else {
        "blobs": [], "total_bytes": 0, "truncated": False, "list_error": None}
    return CONTAINER.context(
        request,
        container,
        prefix=prefix,
        limit=BLOB_PAGE_LIMIT,
        can_read_blobs=can_read,
        list_keys_action=ops.STORAGE_ACCOUNT_LIST_KEYS,
        can_write_blobs=services.can_use_blobs(principal, container, ops.BLOB_WRITE),
        can_delete_blobs=services.can_use_blobs(principal, container, ops.BLOB_DELETE),
        upload_form=upload_form or forms.UploadForm(initial={"prefix": prefix.rpartition("/")[0]}),
        show_upload=upload_form is not None or "upload" in request.GET,
        **listing,
    )


def _container_url(container, prefix: str = "") -> str:
    url = reverse("portal:container_detail", args=[container.pk])
    return f"{url}?{urlencode({'prefix': prefix})}" if prefix else url


@login_required
def container_detail(request, pk):
    container = CONTAINER.get(request, pk)
    context = _container_context(request, container, prefix=request.GET.get("prefix", ""))
    template = "portal/inventory/container_detail.html"
    if request.htmx and request.htmx.target == "blob-list":
        template += "#blob-list"
    return render(request, template, context)


@login_required
@require_POST
def container_upload(request, pk):
    container = CONTAINER.get(request, pk)
    form = forms.UploadForm(request.POST, request.FILES)

    def upload(data):
        uploads = [services.Upload(f.name, f) for f in data["files"]]
        return services.upload_blobs(request.principal, container, uploads, prefix=data["prefix"],
                                     overwrite=data["overwrite"])

    def uploaded(written):
        total = sum(size for _, size in written)
        messages.success(request, f"Uploaded {len(written)} blob{'s' if len(written) != 1 else ''} ({total:,} bytes).")
        prefix = blobs.validate_prefix(form.cleaned_data["prefix"], field=None)
        return redirect(_container_url(container, prefix.rstrip("/") + "/" if prefix else ""))

    def invalid(form):
        context = _container_context(request, container, upload_form=form)
        return render(request, "portal/inventory/container_detail.html", context, status=400)

    return submit(form, create=upload, created=uploaded, invalid=invalid)


@login_required
@require_GET
def blob_download(request, pk):
    container = CONTAINER.get(request, pk)
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
    container = CONTAINER.get(request, pk)
    report_outcome(
        request,
        lambda: services.delete_blobs(request.principal, container, request.POST.getlist("names")),
        lambda count: f"Deleted {count} blob{'s' if count != 1 else ''}.",
    )
    return redirect(_container_url(container, request.POST.get("prefix", "")))


def _container_blob_count(container) -> str:
    count, size = _stats(container)
    return f"Its {count} blob{'s' if count != 1 else ''} ({size:,} bytes) are deleted with it."


container_delete = delete_view(
    CONTAINER,
    noun="container",
    delete=services.delete_container,
    done_url=lambda container: reverse("portal:storage_account_containers", args=[container.account_id]),
    warning=_container_blob_count,
    # This page has always shown the "your roles do not allow deleting" note to everyone: no can_delete.
    context=lambda request, container: {"resource": container, "container": container, "account": container.account},
)


storage_account_network = datasource_network_view(ACCOUNT, "portal/inventory/_account_base.html")
