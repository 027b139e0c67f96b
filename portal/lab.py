"""The portal's part of the demo lab: tenancy, the trainer (a Lab Instructor), the personas and a trainee.

`labs`'s `seed_lab` command calls this first, then each app's own part. Every write goes
through the services as the trainer, so seeded data obeys the same rules as a person's clicks.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from portal import services
from portal.models import LabPersona, Region, ResourceGroup, Subscription
from security import conditions, roles, scopes
from security import services as security_services
from security.models import RoleAssignment, RoleDefinition

LAB_SUBSCRIPTION = "Contoso Lab"
SECURITY_SUBSCRIPTION = "Security"
LAB_REGION = "eastus"
LAB_RESOURCE_GROUP = "rg-backup-lab"
LAB_TARGET_RESOURCE_GROUP = "rg-restore-lab"
SECURITY_RESOURCE_GROUP = "rg-security"
TRAINEE_USERNAME = "trainee"  # the demo trainee: role "Lab Trainee" at the root, starts labs from Home

PERSONAS = [
    # key, username, display name, title, description
    ("backup-admin", "backup-admin", "Ben Admin", "Backup admin",
     "Backup Contributor and Role Based Access Control Administrator on the lab resource group, constrained to "
     "the roles a vault's identity needs, for managed identities only."),
    ("backup-operator", "backup-operator", "Olga Operator", "Backup operator",
     "Backup Operator on the lab resource group: runs backups and restores, changes nothing else."),
    ("security-admin", "security-admin", "Sam Security", "Security admin",
     "Owner of the Security subscription; owns and approves the Resource Guard."),
    ("reader", "reader", "Riley Reader", "Reader", "Reader on the Contoso Lab subscription."),
    ("outsider", "outsider", "Oscar Outsider", "Outsider", "No role anywhere: sees nothing."),
]


@dataclass
class Lab:
    trainer: object
    lab_subscription: Subscription
    security_subscription: Subscription
    lab_group: ResourceGroup
    target_group: ResourceGroup
    security_group: ResourceGroup
    region: Region
    personas: dict
    trainee: object = None  # the demo trainee's principal (role "Lab Trainee" at the root)


def _user(username: str, display: str, *, password: str, staff: bool = False):
    User = get_user_model()
    first, _, last = display.partition(" ")
    user, created = User.objects.get_or_create(
        username=username, defaults={"first_name": first, "last_name": last, "is_staff": staff}
    )
    if created:
        user.set_password(password)
        user.save()
    return user


def _ensure_role(actor, assignee, role_name: str, scope: str, *, condition: dict | None = None) -> None:
    """``assignee`` holds ``role_name`` at ``scope`` (with ``condition`` when one is given). An assignment
    seeded before it had a condition gets it now, through the service (logged)."""
    role = RoleDefinition.objects.get(name=role_name)
    existing = RoleAssignment.objects.filter(principal=assignee, role=role, scope__iexact=scope).first()
    if existing is None:
        security_services.assign_role(actor, assignee=assignee, role=role, scope=scope, condition=condition)
    elif condition is not None and not existing.condition:
        security_services.set_assignment_condition(actor, existing, condition)


def _ensure_group(actor, subscription, name, region) -> ResourceGroup:
    existing = ResourceGroup.objects.filter(subscription=subscription, name__iexact=name).first()
    return existing or services.create_resource_group(actor, subscription=subscription, name=name, region=region)


def _ensure_subscription(actor, name) -> Subscription:
    return Subscription.objects.filter(display_name=name).first() or services.create_subscription(
        actor, display_name=name
    )


def seed_tenancy(*, stdout=None) -> Lab:
    password = settings.STRONGROOM_DEMO_PASSWORD
    trainer_user = _user("trainer", "Terry Trainer", password=password, staff=True)
    trainer = security_services.principal_for_user(trainer_user)
    security_services.bootstrap_root_owner(trainer)
    # Owner does not include the lab's controls: the trainer plays personas, moves the lab clock and helps
    # trainees as a Lab Instructor, granted explicitly like any role.
    _ensure_role(trainer, trainer, roles.LAB_INSTRUCTOR, scopes.ROOT)
    trainee = security_services.principal_for_user(_user(TRAINEE_USERNAME, "Tina Trainee", password=password))
    _ensure_role(trainer, trainee, roles.LAB_TRAINEE, scopes.ROOT)

    region = Region.objects.get(name=LAB_REGION)
    lab_sub = _ensure_subscription(trainer, LAB_SUBSCRIPTION)
    sec_sub = _ensure_subscription(trainer, SECURITY_SUBSCRIPTION)
    lab_group = _ensure_group(trainer, lab_sub, LAB_RESOURCE_GROUP, region)
    target_group = _ensure_group(trainer, lab_sub, LAB_TARGET_RESOURCE_GROUP, region)
    security_group = _ensure_group(trainer, sec_sub, SECURITY_RESOURCE_GROUP, region)

    personas = {}
    for order, (key, username, display, title, description) in enumerate(PERSONAS):
        principal = security_services.principal_for_user(_user(username, display, password=password))
        persona, _ = LabPersona.objects.update_or_create(
            key=key, defaults={"principal": principal, "title": title, "description": description, "order": order}
        )
        personas[key] = persona

    # The backup admin's delegation is constrained to what "Assign missing roles" grants a vault identity:
    # it can fix backup readiness, and cannot make itself (or anyone) Owner.
    delegation = conditions.vault_identity_delegation()
    grants = [
        ("backup-admin", roles.BACKUP_CONTRIBUTOR, lab_group.resource_id, None),
        ("backup-admin", roles.RBAC_ADMINISTRATOR, lab_group.resource_id, delegation),
        ("backup-admin", roles.BACKUP_CONTRIBUTOR, target_group.resource_id, None),
        ("backup-admin", roles.RBAC_ADMINISTRATOR, target_group.resource_id, delegation),
        ("backup-operator", roles.BACKUP_OPERATOR, lab_group.resource_id, None),
        ("backup-operator", roles.READER, lab_group.resource_id, None),
        ("security-admin", roles.OWNER, sec_sub.resource_id, None),
        ("reader", roles.READER, lab_sub.resource_id, None),
    ]
    for key, role_name, scope, condition in grants:
        try:
            _ensure_role(trainer, personas[key].principal, role_name, scope, condition=condition)
        except ValidationError:
            pass  # already held: seeding is idempotent
    if stdout:
        stdout.write(f"Tenancy: {LAB_SUBSCRIPTION} and {SECURITY_SUBSCRIPTION}, {len(personas)} personas, "
                     f"trainee '{TRAINEE_USERNAME}' (Lab Trainee).")
    return Lab(trainer, lab_sub, sec_sub, lab_group, target_group, security_group, region, personas, trainee)
