"""The Configure protection wizard (reference §5.4): Basics → Backup policy → Datasources → Review + configure.

Entry points: Home "+ Configure protection" (type preset), the vault's "+ Backup" (vault preset) and
the instance lists. "Create new" on the Backup policy tab opens the policy wizard, which comes back
here with ``?resume=1&policy=<pk>``: the tabs keep what was filled in and the new policy is chosen.
"""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse

from portal.shortcuts import parse_id
from protection import datasource_types, readiness
from protection.instances import services as svc
from protection.instances.forms import ConfigureBasicsForm, ConfigurePolicyForm, ConfigureReviewForm, DatasourcesForm
from protection.pages import ProtectionWizard


class ConfigureProtectionWizard(ProtectionWizard):
    form_list = [("basics", ConfigureBasicsForm), ("policy", ConfigurePolicyForm), ("datasources", DatasourcesForm),
                 ("review", ConfigureReviewForm)]
    step_titles = {"basics": "Basics", "policy": "Backup policy", "datasources": "Datasources"}
    step_templates = {"basics": "protection/configure/_basics.html", "policy": "protection/configure/_policy.html",
                      "datasources": "protection/configure/_datasources.html"}
    title = "Configure protection"
    submit_label = "Configure Backup"
    review_label = "Review + configure"
    prefix_name = "configure"

    def get(self, request, *args, **kwargs):
        if request.GET.get("resume") and self.storage.current_step in self.get_form_list():
            # Back from "Create new" policy: keep the tabs, choose the new policy, show its tab.
            policy = request.GET.get("policy", "")
            if parse_id(policy):
                data = self.storage.get_step_data("policy")
                data = data.copy() if data is not None else self._blank("policy")
                data["policy-policy"] = policy
                self.storage.set_step_data("policy", data)
            self.storage.current_step = "policy"
            return self.render(self.bound_form("policy"))
        response = super().get(request, *args, **kwargs)  # resets the wizard
        preset = self.vault_and_type(request)
        if preset:
            self.remember_preset(preset)
            return self.render(self.get_form())
        return response

    def _blank(self, step):
        from django.http import QueryDict

        data = QueryDict(mutable=True)
        data[f"{self.prefix}-current_step"] = step
        return data

    def get_form_initial(self, step):
        if step == "basics":
            return dict(self.preset)
        return {}

    def get_breadcrumbs(self):
        return [("Backup instances", reverse("protection:instance_list"))]

    def basics(self):
        data = self.get_cleaned_data_for_step("basics") or {}
        return data.get("vault"), data.get("datasource_type")

    def get_form_kwargs(self, step=None):
        principal = self.request.principal
        if step == "basics":
            return {"principal": principal}
        if step in ("policy", "datasources"):
            vault, kind = self.basics()
            return {"principal": principal, "vault": vault, "datasource_type": kind}
        return {}

    def get_context_data(self, form, **kwargs):
        context = super().get_context_data(form=form, **kwargs)
        vault, kind = self.basics() if self.steps.current != "basics" else (None, None)
        principal = self.request.principal
        context.update(
            vault=vault, datasource=datasource_types.TYPES.get(kind) if kind else None,
            datasource_type=kind, scope_levels=readiness.SCOPE_LEVELS, max_containers=svc.MAX_CONTAINERS,
            may_validate=bool(vault) and svc.may_validate(principal, vault),
            may_configure=bool(vault) and svc.may_configure(principal, vault),
        )
        if vault is not None and kind:
            context["create_policy_url"] = (
                f"{reverse('protection:policy_create')}?vault={vault.pk}&type={datasource_types.get(kind).short}&return=configure"
            )
        if self.steps.current == "datasources" and hasattr(form, "table") and vault is not None:
            rows = form.table()
            context["rows"] = rows
            context["any_assignable"] = any(r["readiness"] and r["readiness"].can_assign for r in rows)
            context["any_missing"] = any(r["readiness"] and not r["readiness"].ok for r in rows)
        return context

    def done(self, form_list, form_dict, **kwargs):
        basics = form_dict["basics"].cleaned_data
        policy = form_dict["policy"].cleaned_data["policy"]
        created = svc.configure_protection(self.request.principal, vault=basics["vault"], policy=policy,
                                           selections=form_dict["datasources"].selections())
        names = ", ".join(f"'{i.name}'" for i in created)
        messages.success(self.request, f"Configuring protection for {len(created)} backup instance"
                                       f"{'s' if len(created) != 1 else ''}: {names}. Progress shows below.")
        return redirect(f"{reverse('protection:instance_list')}?vault={basics['vault'].pk}")
