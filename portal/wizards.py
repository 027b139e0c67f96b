"""A generic tabbed wizard in the Azure portal's style, on django-formtools' `SessionWizardView`.

What the user gets:

* tabs across the top, each one clickable at any time; ``Previous`` / ``Next`` at the bottom and
  ``Review + create`` reachable from every tab;
* every field starts at its default (the form's ``initial``), so a user may go from the first tab
  straight to ``Review + create``;
* moving between tabs keeps what was typed, valid or not; ``Next`` validates the tab it leaves;
* the Review tab validates every tab (tabs never opened are validated with their defaults), marks
  each tab with errors and jumps to the first of them; when all pass it shows a summary and the
  submit button (``Create``).

How to use it::

    class VaultCreateWizard(TabbedWizardView):
        form_list = [("basics", BasicsForm), ("properties", PropertiesForm), ("review", ReviewForm)]
        step_titles = {"basics": "Basics", "properties": "Vault Properties"}
        step_templates = {"basics": "vaults/wizard/_basics.html"}   # optional; default: generic fields
        title = "Create Backup vault"
        submit_label = "Create"

        def get_form_kwargs(self, step=None):
            return {"principal": self.request.principal}

        def done(self, form_list, form_dict, **kwargs):
            ...call the service with form_dict["basics"].cleaned_data...; return redirect(...)

The last step must be a `ReviewForm` (or subclass). Each form may define ``summary()`` returning
``[(label, text), ...]`` for the Review tab; otherwise every visible field is listed with its
displayed value. ``done`` may raise `django.core.exceptions.ValidationError`: field errors are put
back on the tab that owns the field (and the wizard jumps there), other errors show on Review.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.http import QueryDict
from formtools.wizard.forms import ManagementForm
from formtools.wizard.views import SessionWizardView

GOTO = "wizard_goto_step"


class ReviewForm(forms.Form):
    """The Review + create tab: no fields of its own. Ignores the extra keyword arguments the
    wizard's ``get_form_kwargs`` passes to every tab."""

    is_review = True
    _form_kwargs = {"data", "files", "auto_id", "prefix", "initial", "error_class", "label_suffix",
                    "empty_permitted", "field_order", "use_required_attribute", "renderer"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{k: v for k, v in kwargs.items() if k in self._form_kwargs})


def display_value(bound_field) -> str:
    """A field's value as the user chose it ("Geo-redundant", "Yes", "rg-backup-lab", "—")."""
    field = bound_field.field
    form = bound_field.form
    value = form.cleaned_data.get(bound_field.name) if hasattr(form, "cleaned_data") else bound_field.value()
    if isinstance(field, forms.BooleanField):
        return "Yes" if value else "No"
    if value in (None, "", [], ()):
        return "—"
    if isinstance(field, forms.ModelChoiceField):
        return str(value)
    if isinstance(field, forms.ChoiceField):
        labels = {str(k): str(v) for k, v in field.choices}
        if isinstance(value, (list, tuple)):
            return ", ".join(labels.get(str(v), str(v)) for v in value)
        return labels.get(str(value), str(value))
    return str(value)


def initial_data(form) -> QueryDict:
    """POST-style data equal to an unbound form's defaults, so an unopened tab validates as shown."""
    data = QueryDict(mutable=True)
    for name, field in form.fields.items():
        bound = form[name]
        value = bound.value()
        key = form.add_prefix(name)
        if isinstance(field.widget, forms.CheckboxInput):
            if value:
                data[key] = "on"
        elif isinstance(value, (list, tuple)):
            data.setlist(key, [str(v) for v in value])
        elif value is not None:
            data[key] = str(value)
    return data


class TabbedWizardView(SessionWizardView):
    template_name = "portal/wizard.html"
    title = ""
    subtitle = ""
    step_titles: dict = {}
    step_templates: dict = {}
    submit_label = "Create"
    review_step = "review"
    review_label = "Review + create"
    # Service field names that differ from the form's: {"immutability_state": "immutability"}.
    error_field_aliases: dict = {}
    breadcrumbs: list = []  # [(label, url)] shown before the title; override get_breadcrumbs()

    def get_breadcrumbs(self) -> list:
        return list(self.breadcrumbs)

    # --- data per tab ---------------------------------------------------------------------------

    def step_title(self, step) -> str:
        if step == self.review_step:
            return self.review_label
        return self.step_titles.get(step, step.replace("_", " ").capitalize())

    def step_data(self, step):
        """What the tab holds: what was typed there, or its defaults when never opened."""
        stored = self.storage.get_step_data(step)
        if stored is not None:
            return stored
        return initial_data(self.get_form(step))

    def bound_form(self, step):
        return self.get_form(step=step, data=self.step_data(step), files=self.storage.get_step_files(step))

    def get_cleaned_data_for_step(self, step):
        # Later tabs may depend on earlier ones (a tab's choices on the chosen region, say): read
        # unopened tabs with their defaults, as Review does.
        if step not in self.form_list:
            return None
        form = self.bound_form(step)
        return form.cleaned_data if form.is_valid() else None

    def validate_all(self):
        """Bind and validate every tab but Review: ``(forms by step, steps with errors)``."""
        bound, failing = {}, []
        for step in self.get_form_list():
            if step == self.review_step:
                continue
            form = self.bound_form(step)
            bound[step] = form
            if not form.is_valid():
                failing.append(step)
        return bound, failing

    @property
    def tab_errors(self) -> list:
        return list(self.storage.extra_data.get("tab_errors", []))

    def _set_tab_errors(self, steps) -> None:
        extra = dict(self.storage.extra_data)
        extra["tab_errors"] = list(steps)
        self.storage.extra_data = extra

    def _mark(self, step, has_error: bool) -> None:
        steps = [s for s in self.tab_errors if s != step]
        if has_error:
            steps.append(step)
        self._set_tab_errors(steps)

    # --- navigation -----------------------------------------------------------------------------

    def post(self, *args, **kwargs):
        management = ManagementForm(self.request.POST, prefix=self.prefix)
        if not management.is_valid():
            raise SuspiciousOperation("The wizard's management data is missing or has been tampered with.")
        posted_step = management.cleaned_data["current_step"]
        if posted_step in self.get_form_list() and posted_step != self.steps.current:
            # The page was reloaded or reached with the browser's Back button: follow the page.
            self.storage.current_step = posted_step
        goto = self.request.POST.get(GOTO)
        current = self.steps.current
        form = self.get_form(data=self.request.POST, files=self.request.FILES)
        if goto and goto in self.get_form_list():
            if current != self.review_step:
                # Keep what was typed on the tab being left, valid or not (as the portal does).
                self.storage.set_step_data(current, self.process_step(form))
                self.storage.set_step_files(current, self.process_step_files(form))
                if current in self.tab_errors:
                    self._mark(current, not form.is_valid())
            if goto == self.review_step:
                return self.render_review()
            self.storage.current_step = goto
            goto_form = self.get_form(
                step=goto, data=self.storage.get_step_data(goto), files=self.storage.get_step_files(goto)
            )
            return self.render(goto_form)
        if current == self.review_step:
            return self.render_done(form, **kwargs)
        # "Next": the tab being left must be valid.
        self.storage.set_step_data(current, self.process_step(form))
        self.storage.set_step_files(current, self.process_step_files(form))
        valid = form.is_valid()
        self._mark(current, not valid)
        if not valid:
            return self.render(form)
        next_step = self.steps.next
        if next_step == self.review_step:
            return self.render_review()
        self.storage.current_step = next_step
        return self.render(
            self.get_form(step=next_step, data=self.storage.get_step_data(next_step),
                          files=self.storage.get_step_files(next_step))
        )

    def render_review(self, **kwargs):
        bound, failing = self.validate_all()
        self._set_tab_errors(failing)
        if failing:
            return self._jump_to(failing[0], bound[failing[0]], **kwargs)
        self.storage.current_step = self.review_step
        return self.render(self.get_form(step=self.review_step), bound_forms=bound, **kwargs)

    def _jump_to(self, step, form, **kwargs):
        self.storage.current_step = step
        return self.render(form, review_failed=True, **kwargs)

    def render_done(self, form, **kwargs):
        bound, failing = self.validate_all()
        self._set_tab_errors(failing)
        if failing:
            return self._jump_to(failing[0], bound[failing[0]], **kwargs)
        try:
            response = self.done(list(bound.values()), form_dict=bound, **kwargs)
        except ValidationError as exc:
            return self.render_done_failure(bound, exc, **kwargs)
        self.storage.reset()
        return response

    def render_done_failure(self, bound, exc: ValidationError, **kwargs):
        """Put a service's errors back where they belong: beside the field, on its tab."""
        general = []
        failing = []
        if hasattr(exc, "error_dict"):
            for field_name, messages in exc.message_dict.items():
                field_name = self.error_field_aliases.get(field_name, field_name)
                owner = next((s for s, f in bound.items() if field_name in f.fields), None)
                if owner is None:
                    general.extend(messages)
                    continue
                bound[owner].add_error(field_name, messages)
                if owner not in failing:
                    failing.append(owner)
        else:
            general.extend(exc.messages)
        if failing:
            ordered = [s for s in bound if s in failing]
            self._set_tab_errors(ordered)
            return self._jump_to(ordered[0], bound[ordered[0]], **kwargs)
        self.storage.current_step = self.review_step
        return self.render(self.get_form(step=self.review_step), bound_forms=bound, done_errors=general, **kwargs)

    # --- rendering ------------------------------------------------------------------------------

    def summarize(self, step, form) -> list:
        if hasattr(form, "summary"):
            return list(form.summary())
        rows = []
        for bound in form:
            if bound.is_hidden:
                continue
            rows.append((bound.label, display_value(bound)))
        return rows

    def get_context_data(self, form, **kwargs):
        bound_forms = kwargs.pop("bound_forms", None)
        context = super().get_context_data(form=form, **kwargs)
        current = self.steps.current
        errors = self.tab_errors
        context["tabs"] = [
            {
                "step": step,
                "title": self.step_title(step),
                "current": step == current,
                "error": step in errors,
                "number": index + 1,
            }
            for index, step in enumerate(self.get_form_list())
        ]
        context["wizard_title"] = self.title
        context["wizard_subtitle"] = self.subtitle
        context["is_review"] = current == self.review_step
        context["review_step"] = self.review_step
        context["submit_label"] = self.submit_label
        context["review_label"] = self.review_label
        context["step_template"] = self.step_templates.get(current, "portal/wizard.html#fields")
        context["step_title"] = self.step_title(current)
        context["error_tabs"] = [self.step_title(s) for s in errors]
        context["breadcrumbs"] = self.get_breadcrumbs()
        next_step = self.steps.next
        context["next_title"] = self.step_title(next_step) if next_step else ""
        if context["is_review"] and bound_forms:
            context["summary"] = [
                {"title": self.step_title(step), "step": step, "rows": self.summarize(step, f)}
                for step, f in bound_forms.items()
            ]
        return context
