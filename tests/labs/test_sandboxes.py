"""A sandbox: its own subscription and groups, real data seeded through the services, the trainee's roles
in it and nowhere else, and a PostgreSQL login that sees only its own database."""

from __future__ import annotations

import pytest

from labs import catalogue
from labs.catalogue import CheckResult, Lab, Step


def _probe_lab():
    """A lab of one step, registered by this test: the check reads the container list (real state)."""
    from portal.inventory import services as inv

    def check(ctx):
        account = ctx.world.source_account
        if account.containers.filter(name="scratch").exists():
            return CheckResult.ok("The container scratch exists.")
        return CheckResult.missing(f"There is no container 'scratch' in {account.name} yet.")

    def solve(ctx):
        inv.create_container(ctx.trainee, ctx.world.source_account, name="scratch")

    lab = Lab("probe", "Probe", "A test lab.", ("nothing",), 1, catalogue.Document("Test", "none"),
              (Step("scratch", "Make a container", "Create **scratch** in {source_account}.", check, solve, hints=("Use + Container.",)),))
    return catalogue.register(lab)


@pytest.fixture
def probe_lab():
    lab = _probe_lab()
    yield lab
    catalogue._LABS.pop(lab.slug, None)


def test_a_sandbox_holds_real_data_and_the_trainee_sees_only_it(lab, trainee, probe_lab, start):
    from labs.sandboxes import SandboxWorld
    from portal import services as portal_services
    from portal.inventory import blobs, postgres

    run = start("probe")
    world = SandboxWorld(run.sandbox)
    assert [s.display_name for s in portal_services.subscriptions_for(trainee)] == [world.names.subscription]
    names = {c.name: sorted(b.name for b in blobs.iter_blobs(c)) for c in world.source_account.containers.all()}
    assert set(names) == {"documents", "images", "logs"} and "reports/2024/q1/summary.md" in names["documents"]
    assert world.volume.last_checksum and world.volume.allocated_bytes > 0
    server = world.pg_server
    assert server.only_owned_databases and server.admin_user == world.names.pg_login
    assert [d.name for d in postgres.discover_databases(server.connection_params(), owned_only=True)] == [world.names.pg_database]


def test_check_fails_before_and_passes_after_solve_and_hints_grow(lab, trainee, probe_lab, start):
    from labs import services
    from tests.labs.conftest import check, solve

    run = start("probe")
    assert check(run) == {"scratch": (False, f"There is no container 'scratch' in {run.sandbox.code and 'sbx' + run.sandbox.code + 'src'} yet.")}
    assert services.visible_hints(run, probe_lab.steps[0]) == ("Use + Container.",)
    solve(run, "scratch")
    assert check(run)["scratch"][0] is True
    run.refresh_from_db()
    assert run.completed_at is not None


def test_starting_twice_is_refused_with_what_to_do(lab, trainee, probe_lab, start):
    from django.core.exceptions import ValidationError

    start("probe")
    with pytest.raises(ValidationError, match="already started"):
        start("probe")
