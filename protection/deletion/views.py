"""Delete backup data, Undelete, and the vault's Alerts blade (issue 10).

* Delete backup data (Stop backup → Delete Backup Data, or Delete on the instance): a pane with the
  item's name to type, Reason and Comments. Before the click it previews what the guards would say
  (`{% guard_preview %}`: a Resource Guard, an immutable vault); the form posts as a plain form, so a
  refusal shows the explained denial page with Request access.
* Undelete (a soft-deleted instance): a blade that says what comes back and when the purge would be.
* Alerts (a vault blade): the security and job alerts of the vault and everything in it.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import redirect, render
from django.urls import reverse

from portal.shortcuts import form_errors_from, page_number
from protection.deletion import services as deletion
from protection.deletion.forms import DeleteBackupDataForm
from protection.instances.views import instance_or_404
from protection.models import RecoveryPoint
from protection.pages import deny_if_rbac_refuses, vault_context, vault_or_404
from security import operations as ops
from security.guards import GuardDenied
from vaults.guards import SOFT_DELETE_GUARD


@login_required
def instance_delete_data(request, pk):
    """GET: the Delete backup data pane (htmx) or page. POST: delete (soft delete when the vault has it on)."""
    instance = instance_or_404(request, pk)
    vault = instance.vault
    deny_if_rbac_refuses(deletion.deletion_preview(request.principal, instance))
    form = DeleteBackupDataForm(instance, request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                job = deletion.delete_backup_data(
                    request.principal, instance, confirm_name=form.cleaned_data["confirm_name"],
                    reason=form.cleaned_data["reason"], comments=form.cleaned_data["comments"])
            except ValidationError as exc:
                form_errors_from(form, exc)
            except GuardDenied as exc:  # soft delete's refusals stay on the form, others explain themselves
                if exc.decision.guard != SOFT_DELETE_GUARD:
                    raise
                form.add_error(None, exc.decision.reason)
            else:
                if job.parameters.get("softDelete"):
                    messages.success(request, f"The backup data of '{instance.name}' was deleted: it is soft-deleted "
                                              f"and can be undeleted until {instance.scheduled_purge_at:%Y-%m-%d %H:%M} UTC.")
                else:
                    messages.success(request, f"The backup data of '{instance.name}' is being deleted for good "
                                              "(soft delete is disabled for this vault).")
                return redirect("protection:job_detail", pk=job.pk)
        status = 400
    context = {"instance": instance, "vault": vault, "form": form, "change": deletion.delete_change(instance),
               "operation": ops.INSTANCE_DELETE, "points": RecoveryPoint.objects.filter(instance=instance).count(),
               "deletable": instance.protection_state in deletion.DELETABLE_STATES,
               "instance_url": reverse("protection:instance_detail", args=[instance.pk])}
    template = ("protection/deletion/_delete_data.html" if request.htmx and request.method == "GET"
                else "protection/deletion/delete_data.html")
    return render(request, template, context, status=status)


@login_required
def instance_undelete(request, pk):
    """GET: the Undelete blade. POST: undelete → Protection stopped, with every recovery point."""
    instance = instance_or_404(request, pk)
    deny_if_rbac_refuses(deletion.undelete_preview(request.principal, instance))
    error = ""
    if request.method == "POST":
        try:
            deletion.undelete(request.principal, instance)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        except GuardDenied as exc:  # soft delete's refusals stay on the blade, others explain themselves
            if exc.decision.guard != SOFT_DELETE_GUARD:
                raise
            error = exc.decision.reason
        else:
            messages.success(request, f"'{instance.name}' was undeleted: protection is stopped with all its recovery "
                                      "points. Select Resume backup to back it up again.")
            return redirect("protection:instance_detail", pk=instance.pk)
    context = {"instance": instance, "resource": instance, "vault": instance.vault, "blade": "overview",
               "error": error, "operation": ops.UNDELETE,
               "points": RecoveryPoint.objects.filter(instance=instance).count()}
    return render(request, "protection/deletion/undelete.html", context, status=400 if error else 200)


@login_required
def vault_alerts(request, pk):
    """The vault's Alerts blade: alerts on the vault and on anything in it (instances, policies)."""
    from security.models import Alert

    vault = vault_or_404(request, pk)
    alerts = Alert.objects.filter(Q(affected_resource_id__iexact=vault.resource_id)
                                  | Q(affected_resource_id__istartswith=vault.resource_id.rstrip("/") + "/"))
    state, category = request.GET.get("state", ""), request.GET.get("category", "")
    if state in Alert.State.values:
        alerts = alerts.filter(state=state)
    if category in Alert.Category.values:
        alerts = alerts.filter(category=category)
    page = Paginator(alerts.order_by("-raised_at"), 50).get_page(page_number(request.GET.get("page")))
    context = vault_context(request, vault, "alerts", page=page, state=state, category=category,
                            states=Alert.State, categories=Alert.Category)
    return render(request, "protection/deletion/vault_alerts.html", context)
