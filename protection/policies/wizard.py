"""The Create backup policy wizard (reference §5.3): Basics → Schedule + retention → Review + create.

Reached from the vault's "Backup policies" blade (vault preset), from "Protection policies", and as
"Create new" inside Configure protection (vault and datasource type preset; after Create the user
returns to Configure protection with the new policy chosen).
"""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse

from protection import datasource_types
from protection.pages import ProtectionWizard
from protection.policies import services as svc
from protection.policies.forms import PolicyBasicsForm, PolicyReviewForm, PolicyScheduleForm


class PolicyCreateWizard(ProtectionWizard):
    form_list = [("basics", PolicyBasicsForm), ("schedule", PolicyScheduleForm), ("review", PolicyReviewForm)]
    step_titles = {"basics": "Basics", "schedule": "Schedule + retention"}
    step_templates = {"basics": "protection/policies/wizard/_basics.html",
                      "schedule": "protection/policies/wizard/_schedule.html"}
    title = "Create Backup Policy"
    subtitle = "Backup policy"
    submit_label = "Create"
    prefix_name = "policy_create"

    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)  # resets the wizard
        preset = self.vault_and_type(request)
        if request.GET.get("return") == "configure":
            preset["return"] = "configure"
        if preset:
            self.remember_preset(preset)
            return self.render(self.get_form())
        return response

    def get_form_initial(self, step):
        if step == "basics":
            return {k: v for k, v in self.preset.items() if k in ("vault", "datasource_type")}
        return {}

    def get_breadcrumbs(self):
        return [("Protection policies", reverse("protection:policy_list"))]

    def get_form_kwargs(self, step=None):
        if step == "basics":
            return {"principal": self.request.principal}
        if step == "schedule":
            basics = self.get_cleaned_data_for_step("basics") or {}
            kind = (basics.get("datasource_type") or self._posted_type()
                    or self.get_form_initial("basics").get("datasource_type") or datasource_types.ADLS)
            return {"datasource_type": kind}
        return {}

    def step_title(self, step) -> str:
        # For disks the tab is named "Backup policy" (reference §5.3).
        if step == "schedule" and self._chosen_type() == datasource_types.AZURE_DISK:
            return "Backup policy"
        return super().step_title(step)

    def _chosen_type(self):
        return self._posted_type() or self.preset.get("datasource_type")

    def _posted_type(self):
        data = self.storage.get_step_data("basics")
        if data is not None:
            return data.get("basics-datasource_type")
        return None

    def get_context_data(self, form, **kwargs):
        context = super().get_context_data(form=form, **kwargs)
        context["returning_to_configure"] = self.preset.get("return") == "configure"
        return context

    def done(self, form_list, form_dict, **kwargs):
        basics = form_dict["basics"].cleaned_data
        policy = svc.create_policy(
            self.request.principal, vault=basics["vault"], name=basics["name"],
            datasource_type=basics["datasource_type"], spec=form_dict["schedule"].spec(),
        )
        messages.success(self.request, f"Backup policy '{policy.name}' was created in the vault '{policy.vault.name}'.")
        if self.preset.get("return") == "configure":
            return redirect(f"{reverse('protection:configure_protection')}?resume=1&policy={policy.pk}")
        return redirect("protection:policy_detail", pk=policy.pk)
