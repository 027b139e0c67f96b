"""Fixtures for the labs: a trainee holding Lab Trainee, an instructor holding Lab Instructor, and
sandboxes whose PostgreSQL logins are dropped after the test (the lab cluster is shared)."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(autouse=True)
def _lab_mode(settings):
    settings.STRONGROOM_LAB_MODE = True


def _person(django_user_model, lab, role_name: str, prefix: str):
    from security import roles, scopes
    from security import services as security_services
    from security.models import RoleDefinition

    user = django_user_model.objects.create_user(f"{prefix}-{uuid.uuid4().hex[:8]}", password="pw",
                                                 first_name=prefix.capitalize(), last_name=uuid.uuid4().hex[:4])
    principal = security_services.principal_for_user(user)
    security_services.assign_role(lab.trainer, assignee=principal, role=RoleDefinition.objects.get(name=role_name),
                                  scope=scopes.ROOT)
    assert roles  # the role names come from security.roles
    return principal


@pytest.fixture
def make_trainee(django_user_model, lab):
    from security import roles

    return lambda prefix="trainee": _person(django_user_model, lab, roles.LAB_TRAINEE, prefix)


@pytest.fixture
def trainee(make_trainee):
    return make_trainee()


@pytest.fixture
def instructor(django_user_model, lab):
    from security import roles

    return _person(django_user_model, lab, roles.LAB_INSTRUCTOR, "instructor")


@pytest.fixture
def start(trainee):
    """Start a lab for the trainee (jobs its solves start run inline): ``start("vault-basics")``."""
    from labs import services

    def _start(slug: str, who=None):
        return services.start_lab(who or trainee, slug, run_jobs_inline=True)

    return _start


def check(run):
    """Run the run's checks now and return {step key: (passed, message)}."""
    from labs import services

    return {r.step: (r.passed, r.message) for r in services.check_run(run)}


def solve(run, step_key: str):
    """Perform one step as the trainee (jobs run inline), as a trainee would by clicking."""
    from labs import catalogue, services

    step = catalogue.get(run.lab).step(step_key)
    ctx = services.context_for(run, run_jobs_inline=True)
    step.solve(ctx)
    return ctx


def step_check(run, step_key: str):
    """One step's check alone, against real state now."""
    from labs import catalogue, services

    return catalogue.get(run.lab).step(step_key).check(services.context_for(run))
