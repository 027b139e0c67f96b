"""Restore pages: Home → Recover, the wizard's Validate and Assign missing roles (htmx), and a recovery
point's page: essentials, health and Verify, and browsing what it holds (containers, folders and files
with sizes and a single-blob download; a volume's size and checksum; each database's table of contents).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal.shortcuts import can, parse_uuid, render_denied, require_id
from protection import datasource_types
from protection.instances.views import instance_or_404
from protection.models import RecoveryPoint
from protection.pages import start_page
from protection.restores import access, browse, layout, services, validation
from protection.restores import cross_region as crr
from protection import regions
from protection.restores.forms import AssignRolesForm, RestoreParametersForm, RestoreStartForm
from security import operations as ops
from security.guards import Decision, GuardDenied, evaluate


def _point_or_404(request, pk) -> RecoveryPoint:
    point = RecoveryPoint.objects.select_related("instance__vault__resource_group__subscription", "instance__policy").filter(pk=pk).first()
    if point is None or not can(request.principal, ops.RECOVERY_POINT_READ, point.instance.resource_id):
        raise Http404("No such recovery point, or you cannot read it.")
    return point


# =================================================================================================
# Recover (Home)
# =================================================================================================


@login_required
def restore_start(request):
    """Home → "Recover": Datasource type and Solution → Continue (the wizard, type preset)."""
    return start_page(request, RestoreStartForm, "protection/restore/start.html", "protection:restore_wizard")


# =================================================================================================
# Validate and Assign missing roles (htmx, from the Restore parameters tab)
# =================================================================================================


def _parameters_form(request):
    instance = instance_or_404(request, request.POST.get("instance", ""))
    point_id = require_id(request.POST.get("point", ""), "recovery point", parse=parse_uuid)
    cross_region = request.POST.get("region") == regions.SECONDARY
    points = services.points_of(instance)
    point = (regions.secondary_points(points) if cross_region else points).filter(pk=point_id).first()
    if point is None:
        raise Http404("No such recovery point in this backup instance. Choose the recovery point again on the Recovery point tab.")
    if not services.may_validate(request.principal, instance):
        raise GuardDenied(evaluate(request.principal, ops.VALIDATE_RESTORE, instance))
    form = RestoreParametersForm(request.POST, prefix="parameters", principal=request.principal, instance=instance,
                                 point=point, cross_region=cross_region)
    return instance, point, form


def _validation_pane(request, instance, point, form, *, note="", error="", created=()):
    ready = form.readiness
    rules_ok = form.is_valid() or (ready is not None and not ready.ok and not _rule_errors(form))
    context = {"instance": instance, "point": point, "form": form, "ready": ready, "rules_ok": rules_ok,
               "note": note, "error": error, "assign_form": AssignRolesForm(),
               "created": [{"role": a.role.name, "scope": a.scope} for a in created],
               "problems": _problems(form)}
    return render(request, "protection/restore/_validation.html", context)


def _rule_errors(form) -> bool:
    """True when the form has errors other than the vault identity's missing roles."""
    non_field = [e for e in form.non_field_errors() if not str(e).startswith(validation.MISSING_PERMISSIONS)]
    return bool(non_field) or any(form[name].errors for name in form.fields)


def _problems(form) -> list[str]:
    out = []
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else ""
        for e in errors:
            if not str(e).startswith(validation.MISSING_PERMISSIONS):
                out.append(f"{label}: {e}" if label else str(e))
    return out


@login_required
@require_POST
def restore_validate(request):
    """Validate: the rules and the vault identity's restore roles; logged as validateRestore."""
    instance, point, form = _parameters_form(request)
    if form.is_valid() or (form.readiness is not None and not _rule_errors(form)):
        try:
            services.validate_restore(request.principal, point, form.target(), cross_region=form.cross_region)
        except services.RestoreNotReady:
            pass  # the pane offers Assign missing roles
        except ValidationError as exc:
            return _validation_pane(request, instance, point, form, error=" ".join(exc.messages))
    return _validation_pane(request, instance, point, form)


@login_required
@require_POST
def restore_assign_roles(request):
    """Assign missing roles at the chosen scope, then validate again."""
    instance, point, form = _parameters_form(request)
    form.is_valid()
    if form.readiness is None or _rule_errors(form):
        return _validation_pane(request, instance, point, form, error="Fix the restore parameters first.")
    assign = AssignRolesForm(request.POST)
    if not assign.is_valid():
        return _validation_pane(request, instance, point, form, error="Choose the scope of the role assignments.")
    try:
        created = services.assign_restore_roles(request.principal, point, form.target(), assign.cleaned_data["scope"])
    except GuardDenied as exc:
        return _validation_pane(request, instance, point, form, error=f"No role was assigned. {exc.decision.reason}")
    except ValidationError as exc:
        return _validation_pane(request, instance, point, form, error=" ".join(exc.messages))
    form = RestoreParametersForm(request.POST, prefix="parameters", principal=request.principal, instance=instance,
                                 point=point, cross_region=form.cross_region)
    form.is_valid()
    if form.readiness is not None and form.readiness.ok:
        try:
            services.validate_restore(request.principal, point, form.target(), cross_region=form.cross_region)
        except ValidationError:
            pass
    level = assign.cleaned_data["scope"].lower()
    note = (f"Assigned {len(created)} role{'s' if len(created) != 1 else ''} to the vault's identity at the {level} "
            "scope, then validated again." if created else "Nothing was missing; validated again.")
    return _validation_pane(request, instance, point, form, note=note, created=created)


# =================================================================================================
# Restore to secondary region, from the instance's page (htmx, for its command bar)
# =================================================================================================


@login_required
def instance_secondary_restore(request, pk):
    """**Restore to secondary region** in a backup instance's command bar: the Restore wizard opened in the
    secondary region for this instance when its vault has Cross Region Restore enabled and a point is copied
    there; otherwise the command disabled, saying why (`cross_region.instance_problem`, then the guards as
    the restore will ask them). Nothing for an instance it could never apply to (not PostgreSQL, in a vault
    that keeps no secondary copy)."""
    instance = instance_or_404(request, pk)
    if not (instance.vault.is_geo_redundant or instance.datasource_type == datasource_types.POSTGRES_FLEX):
        return HttpResponse("")
    problem = crr.instance_problem(instance)
    if not problem:
        decision = evaluate(request.principal, ops.RESTORE, instance, {"crossRegion": True})
        if not decision.allowed and decision.guard == "RBAC":  # another guard shows as a badge beside the link
            problem = decision.reason
    return render(request, "protection/restore/_secondary_command.html", {"instance": instance, "problem": problem})


# =================================================================================================
# A recovery point: essentials, Verify, browse
# =================================================================================================


def _point_context(request, point, **extra):
    instance = point.instance
    preview_restore = evaluate(request.principal, ops.RESTORE, instance)
    state = access.state_refusal(instance)
    if preview_restore.allowed and state is not None:  # a soft-deleted instance offers no Restore either
        preview_restore = Decision(False, ops.RESTORE, instance.resource_id,
                                          request.principal.display_name, state)
    preview_verify = evaluate(request.principal, ops.VALIDATE_RESTORE, instance)
    from protection.models import Job, JobOperation

    last_verify = (Job.objects.filter(operation=JobOperation.VERIFY, recovery_point=point).order_by("-real_start_time").first())
    return {"point": point, "instance": instance, "resource": instance, "parts": layout.parts(point),
            "can_restore": preview_restore.allowed, "restore_refusal": preview_restore.reason,
            "can_verify": preview_verify.allowed, "verify_refusal": preview_verify.reason,
            "last_verify": last_verify, "kind": datasource_types.get(instance.datasource_type).short,
            "health_class": {"Healthy": "status-ok", "Damaged": "status-failed"}.get(point.health, "status-info"),
            "restore_url": f"{reverse('protection:restore_wizard')}?instance={instance.pk}&point={point.pk}", **extra}


def _denied(request, exc: GuardDenied):
    """The explained denial page: 409 when the instance's state forbids it, 403 for a missing right."""
    return render_denied(request, exc, status=409 if exc.decision.guard == access.STATE_GUARD else 403)


def _access(request, point, kind, item):
    decision = access.decide(request.principal, point, kind, item)
    return {"allowed": decision.allowed, "reason": decision.reason, "by_state": decision.guard == access.STATE_GUARD}


@login_required
def recovery_point_detail(request, pk):
    point = _point_or_404(request, pk)
    context = _point_context(request, point)
    kind = context["kind"]
    if kind in ("esan", "disk"):
        context["volume"] = browse.volume_facts(point)
    elif kind == "adls":  # each container's files may be listed by whoever may read that container live
        rows = [(p, _access(request, point, access.LIST, p.item)) for p in context["parts"]]
        context["container_rows"] = rows
        context["browse_denied"] = next((a for _p, a in rows if not a["allowed"]), None)
    else:
        context["toc_access"] = _access(request, point, access.LIST, "")
    return render(request, "protection/recovery_points/detail.html", context)


@login_required
@require_POST
def recovery_point_verify(request, pk):
    point = _point_or_404(request, pk)
    try:
        job = services.start_verify(request.principal, point)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("protection:recovery_point_detail", pk=point.pk)
    messages.success(request, "Verifying the recovery point: every chunk it needs is read back and authenticated.")
    return redirect("protection:job_detail", pk=job.pk)


@login_required
def recovery_point_browse(request, pk):
    """ADLS: one container's folder (``?container=&path=``): sub-folders and files with sizes."""
    point = _point_or_404(request, pk)
    if point.instance.datasource_type != datasource_types.ADLS:
        raise Http404("Only storage account recovery points hold containers.")
    container = request.GET.get("container", "")
    try:
        listing = browse.list_folder(request.principal, point, container, request.GET.get("path", ""))
    except GuardDenied as exc:
        return _denied(request, exc)
    except browse.NotInPoint as exc:
        raise Http404(str(exc)) from None
    context = _point_context(request, point, listing=listing, container=container,
                             download_access=_access(request, point, access.DOWNLOAD, container))
    return render(request, "protection/recovery_points/browse.html", context)


@login_required
def recovery_point_download(request, pk):
    """Download one blob of the recovery point, streamed from the engine (``?container=&path=``)."""
    point = _point_or_404(request, pk)
    if point.instance.datasource_type != datasource_types.ADLS:
        raise Http404("Only storage account recovery points hold blobs.")
    try:
        handle = browse.open_blob(request.principal, point, request.GET.get("container", ""), request.GET.get("path", ""))
    except GuardDenied as exc:
        return _denied(request, exc)
    except browse.NotInPoint as exc:
        raise Http404(str(exc)) from None
    return FileResponse(handle, as_attachment=True, filename=handle.name_for_download)


@login_required
def recovery_point_toc(request, pk, database):
    """PostgreSQL: a database dump's table of contents (``pg_restore --list``)."""
    point = _point_or_404(request, pk)
    if point.instance.datasource_type != datasource_types.POSTGRES_FLEX:
        raise Http404("Only PostgreSQL recovery points hold databases.")
    try:
        toc = browse.table_of_contents(request.principal, point, database)
    except GuardDenied as exc:
        return _denied(request, exc)
    except browse.NotInPoint as exc:
        raise Http404(str(exc)) from None
    context = _point_context(request, point, toc=toc, database=database)
    return render(request, "protection/recovery_points/toc.html", context)
