"""The Restore wizard (reference §5.6): Basics → Select recovery point → Restore parameters → Review + restore.

Entry points: a backup instance's **Restore** (``?instance=<id>``, optionally ``&point=<id>`` from a
recovery point's page) and Home → **Recover** (``?type=<short>``). The Restore parameters tab has
**Validate** (the identity's restore roles; **Assign missing roles** when they are missing); **Restore**
on the last tab starts the Restore job and opens its page.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import QueryDict
from django.shortcuts import redirect
from django.urls import reverse

from portal.shortcuts import parse_uuid
from portal.wizards import ReviewForm
from protection import datasource_types
from protection.pages import ProtectionWizard
from protection import regions
from protection.restores import readiness, services
from protection.restores.forms import RecoveryPointForm, RestoreBasicsForm, RestoreParametersForm
from security import clock
from security.guards import GuardDenied
from vaults.networking.guard import NETWORK_GUARD


class RestoreWizard(ProtectionWizard):
    form_list = [("basics", RestoreBasicsForm), ("point", RecoveryPointForm), ("parameters", RestoreParametersForm),
                 ("review", ReviewForm)]
    step_titles = {"basics": "Basics", "point": "Select recovery point", "parameters": "Restore parameters"}
    step_templates = {"basics": "protection/restore/_basics.html", "point": "protection/restore/_point.html",
                      "parameters": "protection/restore/_parameters.html"}
    title = "Restore"
    submit_label = "Restore"
    review_label = "Review + restore"
    prefix_name = "restore"

    @property
    def cross_region(self) -> bool:
        """**Restore to secondary region** (opened with ``?region=Secondary``): the secondary region's
        PostgreSQL instances and points, a target there, a restore that reads the secondary copy only."""
        return self.preset.get("region") == regions.SECONDARY

    def restorable(self, cross_region: bool):
        instances = services.restorable_instances(self.request.principal)
        if cross_region:
            return regions.secondary_instances(instances.filter(datasource_type=datasource_types.POSTGRES_FLEX))
        return instances

    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)  # resets the wizard
        secondary = request.GET.get("region") == regions.SECONDARY
        preset = {"region": regions.SECONDARY} if secondary else {}
        instance_id = request.GET.get("instance", "")
        if instance_id:
            instance = self.restorable(secondary).filter(pk=instance_id).first() if parse_uuid(instance_id) else None
            if instance is not None:
                preset.update({"datasource_type": instance.datasource_type, "instance": str(instance.pk)})
                point_id = parse_uuid(request.GET.get("point", ""))
                points = services.points_of(instance)
                if point_id and (regions.secondary_points(points) if secondary else points).filter(pk=point_id).exists():
                    preset["point"] = str(point_id)
        elif kind := datasource_types.by_short(request.GET.get("type", "")):
            preset["datasource_type"] = kind.api_name
        if preset:
            self.remember_preset(preset)
            if preset.get("point"):
                # From a recovery point: that point, from a range that holds it.
                from protection.models import RecoveryPoint

                point = RecoveryPoint.objects.get(pk=preset["point"])
                data = QueryDict(mutable=True)
                data["point-start"] = point.recovery_point_time.date().isoformat()
                data["point-end"] = max(point.recovery_point_time.date(), clock.now().date()).isoformat()
                data["point-recovery_point"] = preset["point"]
                if point.is_archived and not point.is_rehydrated():  # archive tier: the form's defaults, shown on Review
                    data["point-rehydration_priority"], data["point-rehydration_duration"] = "Standard", "15"
                data[f"{self.prefix}-current_step"] = "point"
                self.storage.set_step_data("point", data)
            if preset.get("instance"):
                # Basics is complete: go on to the recovery point (latest preselected), or, when the
                # point was chosen on its own page, straight to the restore parameters.
                self.storage.current_step = "parameters" if preset.get("point") else "point"
            return self.render(self.get_form(step=self.storage.current_step,
                                             data=self.storage.get_step_data(self.storage.current_step)))
        return response

    def get_context_data(self, form, **kwargs):
        context = self._restore_context(form, **kwargs)
        if self.cross_region:
            context["wizard_title"] = "Restore to secondary region"
        return context

    def get_form_initial(self, step):
        if step == "basics":
            return {k: v for k, v in self.preset.items() if k in ("datasource_type", "instance")}
        return {}

    def get_breadcrumbs(self):
        instance = self.chosen_instance()
        if instance is not None:
            return [(instance.vault.name, reverse("vaults:vault_detail", args=[instance.vault.pk])),
                    (instance.name, reverse("protection:instance_detail", args=[instance.pk]))]
        return []

    def chosen_instance(self):
        data = self.get_cleaned_data_for_step("basics") or {}
        return data.get("instance")

    def chosen_point(self):
        data = self.get_cleaned_data_for_step("point") or {}
        return data.get("recovery_point")

    def get_form_kwargs(self, step=None):
        principal = self.request.principal
        region = {"cross_region": True} if self.cross_region else {}
        if step == "basics":
            return {"principal": principal, **region}
        if step == "point":
            return {"principal": principal, "instance": self.chosen_instance(), **region}
        if step == "parameters":
            instance = self.chosen_instance()
            return {"principal": principal, "instance": instance, "point": self.chosen_point() if instance else None,
                    **region}
        return {}

    def _restore_context(self, form, **kwargs):
        context = super().get_context_data(form=form, **kwargs)
        instance = self.chosen_instance() if self.steps.current != "basics" else None
        context.update(instance=instance, scope_levels=readiness.SCOPE_LEVELS, cross_region=self.cross_region,
                       datasource=datasource_types.TYPES.get(instance.datasource_type) if instance else None)
        if instance is not None:
            context["may_validate"] = services.may_validate(self.request.principal, instance)
            context["point"] = self.chosen_point() if self.steps.current in ("parameters", "review") else None
        return context

    def done(self, form_list, form_dict, **kwargs):
        params = form_dict["parameters"]
        point_form = form_dict["point"]
        point = point_form.cleaned_data["recovery_point"]
        try:
            if point_form.needs_rehydration() and not self.cross_region:  # archive tier (issue 21): rehydrate, then restore
                from protection.restores import rehydration

                job = rehydration.start_rehydrated_restore(
                    self.request.principal, point, params.target(),
                    priority=point_form.cleaned_data["rehydration_priority"],
                    duration=point_form.cleaned_data["rehydration_duration"])
                messages.success(self.request, f"Rehydrating the recovery point of '{point.instance.name}': the Restore "
                                               "job starts once it is restorable.")
                return redirect("protection:job_detail", pk=job.pk)
            job = services.start_restore(self.request.principal, point, params.target(), cross_region=self.cross_region)
        except GuardDenied as exc:  # the vault's network: said on Review, as the rules are (others: the 403 page)
            if exc.decision.guard != NETWORK_GUARD:
                raise
            decision = exc.decision
            raise ValidationError(f"{decision.code}: {decision.reason} What would lift it: {decision.remedy}") from None
        where = " in the secondary region" if self.cross_region else ""
        messages.success(self.request, f"Restore of '{point.instance.name}'{where} started: progress shows below.")
        return redirect("protection:job_detail", pk=job.pk)

