"""The shapes every inventory page shares, written once.

A `Kind` describes one kind of resource: how to find an object (404 unless the principal may read it)
and what its pages know about it (its parents, what the principal may do to it). Over it: the list page,
the create page, a blade with an inline create form, and the "type the name to confirm" delete page.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Model
from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse

from portal.services import resource_groups_for
from portal.shortcuts import can, confirmed_delete, form_errors_from, get_visible_or_404, visible


@dataclass(frozen=True)
class Kind:
    model: type[Model]
    name: str  # what templates call the object: "account", "san", "server"
    read: str  # the read action: an object the principal may not read is 404
    detail_url: str  # the URL name of its overview
    delete: str = ""  # the delete action, for "can_delete" ("" = its pages offer no delete)
    related: tuple[str, ...] = ()  # select_related for its pages
    parents: tuple[tuple[str, str], ...] = ()  # (context name, attribute path): ("san", "volume_group.elastic_san")
    abilities: tuple[tuple[str, str], ...] = ()  # (context flag, action checked at the object)
    # Kinds with a list and a create page of their own (the others live on their parent's pages):
    write: str = ""  # the create action, needed on a resource group
    label: str = ""  # "storage account"
    plural: str = ""  # "storage accounts"
    list_url: str = ""
    create_url: str = ""

    def queryset(self):
        return self.model.objects.select_related(*self.related)

    def get(self, request, pk):
        return get_visible_or_404(request.principal, self.queryset(), self.read, pk=pk)

    def rows(self, request):
        return visible(request.principal, self.queryset(), self.read)

    def context(self, request, obj, blade: str = "overview", **extra) -> dict:
        """The page context of ``obj``: the object, its parents, the blade, and what the principal may do."""
        principal = request.principal
        context = {self.name: obj, "resource": obj, "blade": blade}
        context.update({name: attrgetter(path)(obj) for name, path in self.parents})
        abilities = ((("can_delete", self.delete),) if self.delete else ()) + self.abilities
        context.update({flag: can(principal, action, obj.resource_id) for flag, action in abilities})
        context.update(extra)
        return context


def with_attach_roots(form, field: str) -> None:
    """Say, under an "attach" field, which folders may be attached from."""
    roots = ", ".join(str(r) for r in settings.STRONGROOM_ATTACH_ROOTS) or "none configured"
    form.fields[field].help_text += f" Allowed roots: {roots}."


def submit(form, *, create: Callable, created: Callable, invalid: Callable):
    """The create flow every kind shares: a valid form goes to the service (``create(cleaned_data)``);
    the service's ValidationError lands on the form, beside its field or on top, and ``invalid(form)``
    shows the page again. ``created(obj)`` answers a success."""
    if form.is_valid():
        try:
            obj = create(form.cleaned_data)
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            return created(obj)
    return invalid(form)


def form_page(request, template: str, context: dict, form):
    """A create page: 400 when a submitted form comes back with errors."""
    return render(request, template, {**context, "form": form}, status=400 if form.is_bound else 200)


def list_view(kind: Kind, *, template: str):
    """A kind's list: the objects the principal may read, and "Create" when it may create in some group."""

    @login_required
    def view(request):
        can_create = resource_groups_for(request.principal, kind.write).exists()
        return render(request, template, {"kind": kind, "rows": kind.rows(request), "can_create": can_create})

    return view


def create_view(kind: Kind, *, form_class, template: str, create: Callable, created: Callable,
                prepare: Callable | None = None, form_kwargs: Callable | None = None):
    """A kind's create page: a form with a resource group the principal may create ``kind`` in.

    ``create(principal, **cleaned_data)`` is the service (the form's fields are its arguments);
    ``created(request, obj)`` says so, and the page goes on to the new object's overview.
    ``form_kwargs(request)`` gives the form more choices narrowed to the principal (a datasource's subnets)."""

    @login_required
    def view(request):
        groups = resource_groups_for(request.principal, kind.write)
        extra = form_kwargs(request) if form_kwargs else {}
        form = form_class(request.POST or None, resource_groups=groups, **extra)
        if prepare:
            prepare(form)

        def done(obj):
            created(request, obj)
            return redirect(kind.detail_url, pk=obj.pk)

        context = {"kind": kind, "has_groups": groups.exists()}
        return submit(form, create=lambda data: create(request.principal, **data), created=done,
                      invalid=lambda form: form_page(request, template, context, form))

    return view


def blade_with_form(request, template: str, context: dict, form, blank_form):
    """A blade listing an object's children with an inline create form: the form shows after "+ New"
    (``?new``) or when a submitted one comes back with errors (400)."""
    context.update(form=form or blank_form, show_form=form is not None or "new" in request.GET)
    return render(request, template, context, status=400 if form else 200)


def add_child_view(parent: Kind, *, form_class, create: Callable, message: str, done_url: Callable, blade: Callable,
                   form_name: str = "form", form_kwargs: Callable | None = None, ask_url: Callable | None = None):
    """A blade's inline create. A POST fills ``form_class`` (with ``form_kwargs(request)``) and
    ``create(principal, parent, **cleaned_data)`` calls the service; ``message`` (with the new ``{child}``)
    says so and ``done_url(parent, child)`` is where it leads. A refused or invalid form shows the ``blade``
    view again, with the form as its ``form_name`` argument. A GET goes to ``ask_url(pk)`` (the page with
    the form open) where one is given, and is refused (405) otherwise."""

    @login_required
    def view(request, pk):
        if request.method != "POST":
            return redirect(ask_url(pk)) if ask_url is not None else HttpResponseNotAllowed(["POST"])
        obj = parent.get(request, pk)

        def created(child):
            messages.success(request, message.format(child=child))
            return redirect(done_url(obj, child))

        return submit(
            form_class(request.POST, **(form_kwargs(request) if form_kwargs else {})),
            create=lambda data: create(request.principal, obj, **data),
            created=created,
            invalid=lambda form: blade(request, pk, **{form_name: form}),
        )

    return view


def confirm_delete(request, obj, *, kind: str, delete, done_url: str, back_url: str, context: dict, warning: str = ""):
    """The "type the name to confirm" page every inventory delete shares."""
    deleted, error = confirmed_delete(request, obj, kind=kind, delete=delete)
    if deleted:
        messages.success(request, f"Deleted {kind} '{obj.name}'.")
        return redirect(done_url)
    return render(
        request,
        "portal/inventory/confirm_delete.html",
        {**context, "obj": obj, "kind": kind, "error": error, "back_url": back_url, "warning": warning},
        status=400 if error else 200,
    )


def delete_view(kind: Kind, *, noun: str, delete: Callable, warning: Callable, done_url: Callable | None = None,
                context: Callable | None = None):
    """A kind's delete page. ``delete(principal, obj)`` calls the service; ``warning(obj)`` says what goes
    with it; ``done_url(obj)`` is where a deletion leads (the kind's list unless said)."""

    @login_required
    def view(request, pk):
        obj = kind.get(request, pk)
        return confirm_delete(
            request,
            obj,
            kind=noun,
            delete=lambda: delete(request.principal, obj),
            done_url=done_url(obj) if done_url else reverse(kind.list_url),
            back_url=reverse(kind.detail_url, args=[obj.pk]),
            context=context(request, obj) if context else kind.context(request, obj, ""),
            warning=warning(obj),
        )

    return view
