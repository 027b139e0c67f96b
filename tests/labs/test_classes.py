"""Classes: accounts and sandboxes made when the class is created, pairs wired so each is the other's
security admin, the cap, a pair reset together, closing."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from labs import catalogue
from labs.catalogue import CheckResult, Lab, Step


@pytest.fixture
def paired_probe():
    """A one-step paired lab: the check reads who owns the partner's security group (real role assignments)."""
    from security import roles
    from security.rbac import active_assignments

    def check(ctx):
        if ctx.partner is None:
            return CheckResult.missing("No partner: self-study.")
        owns = [a for a in active_assignments(ctx.partner) if a.role.name == roles.OWNER
                and a.scope.lower() == ctx.partner_world.security_group.resource_id.lower()]
        return CheckResult(bool(owns), "partner owns their security group")

    lab = catalogue.register(Lab("paired-probe", "Paired probe", "A test lab.", ("pairs",), 1,
                                 catalogue.Document("Test", "none"),
                                 (Step("pair", "See your partner", "Look.", check, lambda ctx: None),), paired=True))
    yield lab
    catalogue._LABS.pop(lab.slug, None)


def test_a_class_is_complete_when_created_and_pairs_each_other(lab, instructor, paired_probe, django_user_model):
    from django.contrib.auth import authenticate

    from labs import classes, services
    from labs.models import LabRun, Seat
    from labs.sandboxes import SandboxWorld
    from portal import services as portal_services
    from tests.labs.conftest import check

    created = classes.create_class(instructor, name="Backup basics, March", labs=["paired-probe", "vault-basics"],
                                   trainees=3)
    seats = list(created.lab_class.seats.select_related("trainee__user", "sandbox"))
    assert [c.seat for c in created.credentials] == [1, 2, 3]
    assert [c.partner for c in created.credentials] == [2, 1, None]  # the odd one out: self-study
    for credential in created.credentials:
        assert authenticate(username=credential.username, password=credential.password) is not None
    for seat in seats:
        world = SandboxWorld(seat.sandbox)
        assert world.source_account is not None and world.volume is not None and world.pg_database is not None
        assert {s.display_name for s in portal_services.subscriptions_for(seat.trainee)} == {world.names.subscription} | (
            {SandboxWorld(seat.partner().sandbox).names.subscription} if seat.pair else set())
        assert LabRun.objects.filter(trainee=seat.trainee, active=True).count() == 2
    run_1 = services.active_run(seats[0].trainee, "paired-probe")
    assert check(run_1)["pair"][0] is True
    assert check(services.active_run(seats[2].trainee, "paired-probe"))["pair"] == (False, "No partner: self-study.")
    assert Seat.objects.get(trainee=seats[1].trainee).partner().trainee == seats[0].trainee


def test_the_cap_and_bad_input_are_refused_with_what_to_do(lab, instructor, settings):
    from labs import classes
    from labs.models import LabClass

    settings.STRONGROOM_LAB_CLASS_CAP = 2
    with pytest.raises(ValidationError, match="at most 2 trainees"):
        classes.create_class(instructor, name="Too big", labs=["vault-basics"], trainees=3)
    with pytest.raises(ValidationError, match="Choose labs from the list"):
        classes.create_class(instructor, name="No such lab", labs=["nope"], trainees=1)
    assert not LabClass.objects.exists()


def test_a_trainee_may_not_create_a_class(lab, trainee):
    from labs import classes
    from security.guards import GuardDenied

    with pytest.raises(GuardDenied):
        classes.create_class(trainee, name="Mine", labs=["vault-basics"], trainees=1)


def test_a_pair_resets_together_and_closing_retires_and_disables(lab, instructor, paired_probe):
    from labs import classes, services
    from labs.models import Sandbox

    created = classes.create_class(instructor, name="Pairs", labs=["paired-probe"], trainees=2)
    first, second = created.lab_class.seats.all()
    old = {first.sandbox.code, second.sandbox.code}
    classes.reset_seats(instructor, [first])
    first.refresh_from_db()
    second.refresh_from_db()
    assert {first.sandbox.code, second.sandbox.code}.isdisjoint(old)
    assert Sandbox.objects.filter(code__in=old, status=Sandbox.Status.RETIRED).count() == 2
    from tests.labs.conftest import check

    assert check(services.active_run(first.trainee, "paired-probe"))["pair"][0] is True  # wired again

    classes.close_class(instructor, created.lab_class)
    first.trainee.user.refresh_from_db()
    assert not first.trainee.user.is_active
    assert set(Sandbox.objects.filter(pk__in=[first.sandbox_id, second.sandbox_id]).values_list("status", flat=True)) == {"Retired"}
    assert services.active_run(first.trainee, "paired-probe") is None


def test_labs_that_protect_the_same_datasource_cannot_share_a_class(lab, instructor):
    from labs import classes

    with pytest.raises(ValidationError, match="both protect the storage account sbx‹code›src"):
        classes.create_class(instructor, name="Clash", labs=["adls-backup", "mua-resource-guard"], trainees=1)
    with pytest.raises(ValidationError, match="both protect the Elastic SAN volume vol-data"):
        classes.create_class(instructor, name="Clash", labs=["elastic-san-backup", "ransomware-drill"], trainees=1)
