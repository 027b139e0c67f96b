"""Security's own tables: principals, roles, assignments, the activity log, alerts, the clock.

Resources are known here only by their ARM-style resource id strings, never by model, so that
`security` imports nothing from the other apps.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from security import operations


class Principal(models.Model):
    """Anyone or anything that can hold a role: a portal user, a managed identity, the system."""

    class Kind(models.TextChoices):
        USER = "User", "User"
        MANAGED_IDENTITY = "ManagedIdentity", "Managed identity"
        SERVICE_PRINCIPAL = "ServicePrincipal", "Service principal"
        SYSTEM = "System", "System"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    display_name = models.CharField(max_length=200)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="principal",
    )
    # For a managed identity: the resource it belongs to (a vault's resource id).
    resource_id = models.CharField(max_length=512, blank=True, db_index=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["display_name"]

    def __str__(self):
        return self.display_name

    @property
    def principal_id(self) -> str:
        return str(self.id)

    @property
    def sign_in_name(self) -> str:
        return self.user.get_username() if self.user_id else ""


class AppRegistration(models.Model):
    """An app registration (Entra ID's application object): a client id, a name, and its service principal,
    the principal that holds roles and signs in with the client credentials grant (`security.applications`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)  # the application's object id
    client_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)  # "Application (client) ID"
    display_name = models.CharField(max_length=120)
    principal = models.OneToOneField(Principal, on_delete=models.CASCADE, related_name="application")
    created_by = models.ForeignKey(Principal, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["display_name", "created_at"]

    def __str__(self):
        return self.display_name

    @property
    def name(self) -> str:  # what the portal's "type the name to confirm" compares
        return self.display_name

    # A directory object: its operations are checked at the directory's root ("/"), as Entra ID's are.
    resource_id = "/"

    def owned_by(self, principal) -> bool:
        """Whether ``principal`` registered this app (Entra ID makes the registering user its owner)."""
        return self.created_by_id is not None and self.created_by_id == getattr(principal, "pk", None)


class ClientSecret(models.Model):
    """A client secret of an app registration: only a keyed hash of the value is kept (the value is shown
    once, when it is added), with its first three characters as the hint the list shows. Removing it
    revokes it (the row stays, so tokens issued against it are refused by name)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)  # the secret's "Secret ID"
    application = models.ForeignKey(AppRegistration, on_delete=models.CASCADE, related_name="secrets")
    description = models.CharField(max_length=100, blank=True)
    hint = models.CharField(max_length=3)
    value_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()  # lab time, as its expiry
    expires_at = models.DateTimeField()
    created_by = models.ForeignKey(Principal, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.description or self.hint + '…'} ({self.application})"


class RoleDefinition(models.Model):
    """A role as data: which actions it allows, as Azure's roleDefinitions do."""

    id = models.UUIDField(primary_key=True, editable=False)
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    actions = models.JSONField(default=list)
    not_actions = models.JSONField(default=list)
    data_actions = models.JSONField(default=list)
    not_data_actions = models.JSONField(default=list)
    built_in = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class RoleAssignmentQuerySet(models.QuerySet):
    def active_at(self, moment):
        """Assignments in force at ``moment``: started, not yet ended, and not closed.

        A closed assignment (its end recorded) stays ended even when the lab clock is moved back
        before its ``ends_at``: moving the clock never brings back access that has ended.
        """
        return self.filter(Q(starts_at__isnull=True) | Q(starts_at__lte=moment)).filter(
            Q(ends_at__isnull=True) | Q(ends_at__gt=moment), closed_at__isnull=True
        )


class RoleAssignment(models.Model):
    """A principal holds a role at a scope (and everything below it), optionally time-bound."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    principal = models.ForeignKey(Principal, on_delete=models.CASCADE, related_name="assignments")
    role = models.ForeignKey(RoleDefinition, on_delete=models.PROTECT, related_name="assignments")
    scope = models.CharField(max_length=512, db_index=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True, db_index=True)
    description = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        Principal, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when a time-bound assignment's end has been noticed, logged and closed.
    closed_at = models.DateTimeField(null=True, blank=True)
    # Azure's "constrain roles" delegation condition (`security.conditions`), only on assignments of Role
    # Based Access Control Administrator or User Access Administrator; kept as data, rendered as Azure's text.
    condition = models.JSONField(null=True, blank=True)
    condition_version = models.CharField(max_length=8, blank=True)

    objects = RoleAssignmentQuerySet.as_manager()

    class Meta:
        ordering = ["scope", "role__name"]
        indexes = [models.Index(fields=["principal", "scope"])]

    def __str__(self):
        return f"{self.principal} — {self.role} @ {self.scope}"

    @property
    def is_time_bound(self) -> bool:
        return self.ends_at is not None


class PrincipalRefField(models.CharField):
    """A principal's id kept as text: no foreign key, so deleting the principal changes no entry.

    Lookups accept a Principal (or its UUID) as well as the text: ``filter(principal_ref=reader)``."""

    def get_prep_value(self, value):
        value = getattr(value, "pk", value)
        if isinstance(value, uuid.UUID):
            value = str(value)
        return super().get_prep_value(value)


# filter(principal=p) and filter(principal_id__in=[...]) as they were written before the principal became text.
_PRINCIPAL_LOOKUPS = {"principal": "principal_ref", "principal_id": "principal_ref",
                      "principal__in": "principal_ref__in", "principal_id__in": "principal_ref__in"}


class ActivityLogQuerySet(models.QuerySet):
    def _filter_or_exclude(self, negate, args, kwargs):
        return super()._filter_or_exclude(negate, args, {_PRINCIPAL_LOOKUPS.get(k, k): v for k, v in kwargs.items()})

    def update(self, **kwargs):
        raise PermissionError("Activity log entries cannot be changed.")

    def delete(self):
        raise PermissionError("Activity log entries cannot be deleted.")


class ActivityLogEntry(models.Model):
    """One write, allowed or refused. Append-only: entries cannot be edited or deleted.

    Tamper-evident (``security.chain``): an entry is written with ``content_mac``, a keyed BLAKE2b-256 over
    its content (its actors as ids and names in text, never a foreign key that a deletion would change, and a
    random ``uid``), and sealed into one hash chain after its transaction commits: its ``sequence`` and
    ``entry_hash``, a keyed hash of the sequence, the previous entry's hash and the content MAC. On
    PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE of the table, except giving an unsealed entry
    its place in the chain, once.
    """

    class Status(models.TextChoices):
        SUCCEEDED = "Succeeded"
        FAILED = "Failed"

    class Level(models.TextChoices):
        INFORMATIONAL = "Informational"
        WARNING = "Warning"
        ERROR = "Error"
        CRITICAL = "Critical"

    id = models.BigAutoField(primary_key=True)
    # 1, 2, 3… in chain order; None from its write until it is sealed, just after its transaction commits
    sequence = models.BigIntegerField(unique=True, null=True)
    uid = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)  # makes every entry's content unique
    timestamp = models.DateTimeField(db_index=True)  # from the one clock (lab time)
    recorded_at = models.DateTimeField(default=timezone.now)  # wall time
    # Who did it, as text: the principal's id and display name when it was written (a deleted principal,
    # such as a deleted vault's identity, keeps its entries), and the real person when role-playing.
    principal_ref = PrincipalRefField(max_length=64, blank=True, db_index=True)
    principal_name = models.CharField(max_length=200, blank=True)
    actor_ref = PrincipalRefField(max_length=64, blank=True)
    actor_name = models.CharField(max_length=200, blank=True)
    # Who did it, as shown: "trainer as Backup admin" when role-playing.
    caller = models.CharField(max_length=300)
    operation = models.CharField(max_length=300, db_index=True)
    operation_name = models.CharField(max_length=300)
    scope = models.CharField(max_length=512, db_index=True)
    status = models.CharField(max_length=20, choices=Status.choices, db_index=True)
    sub_status = models.CharField(max_length=100, blank=True)
    level = models.CharField(max_length=20, choices=Level.choices, default=Level.INFORMATIONAL)
    correlation_id = models.UUIDField(db_index=True)
    message = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    content_mac = models.CharField(max_length=64)
    previous_hash = models.CharField(max_length=64, blank=True)  # empty until sealed
    entry_hash = models.CharField(max_length=64, blank=True)

    objects = ActivityLogQuerySet.as_manager()

    class Meta:
        ordering = ["-timestamp", "-id"]
        verbose_name_plural = "activity log entries"
        # What each seal reads: the few entries waiting for their place, however long the log.
        indexes = [models.Index(fields=["id"], condition=models.Q(sequence__isnull=True),
                                name="activitylog_unsealed")]

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise PermissionError("Activity log entries cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Activity log entries cannot be deleted.")

    @property
    def principal_id(self) -> uuid.UUID | None:
        try:
            return uuid.UUID(self.principal_ref) if self.principal_ref else None
        except ValueError:
            return None

    @property
    def principal(self) -> "Principal | None":
        """The principal as it is now, or None once it was deleted (the entry keeps ``principal_name``)."""
        if "_principal" not in self.__dict__:
            pk = self.principal_id
            self.__dict__["_principal"] = Principal.objects.filter(pk=pk).first() if pk else None
        return self.__dict__["_principal"]


class ActivityLogHead(models.Model):
    """The chain's head: the last sealed entry's sequence and hash. One row, locked while sealing."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    sequence = models.BigIntegerField(default=0)
    entry_hash = models.CharField(max_length=64)


class ActivityLogCheck(models.Model):
    """The outcome of the last check of the chain (one row): what the Activity log page shows."""

    class State(models.TextChoices):
        VERIFIED = "Verified"
        BROKEN = "Broken"

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    state = models.CharField(max_length=20, choices=State.choices)
    checked_at = models.DateTimeField()  # wall time
    entries_checked = models.BigIntegerField(default=0)
    seconds = models.FloatField(default=0)
    # The first break: its kind (edited, deleted, inserted), the entry's sequence number, what was found.
    break_kind = models.CharField(max_length=20, blank=True)
    break_sequence = models.BigIntegerField(null=True, blank=True)
    break_detail = models.TextField(blank=True)
    # The last entry a clean check covered: a later check finds it again, or the tail was cut off.
    verified_sequence = models.BigIntegerField(default=0)
    verified_hash = models.CharField(max_length=64, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)


class Alert(models.Model):
    """A fired alert (security or job), as Azure Monitor's built-in backup alerts."""

    class State(models.TextChoices):
        NEW = "New"
        ACKNOWLEDGED = "Acknowledged"
        CLOSED = "Closed"

    class Severity(models.TextChoices):
        SEV0 = "Sev0", "Sev0 — Critical"
        SEV1 = "Sev1", "Sev1 — Error"
        SEV2 = "Sev2", "Sev2 — Warning"
        SEV3 = "Sev3", "Sev3 — Informational"
        SEV4 = "Sev4", "Sev4 — Verbose"

    class Category(models.TextChoices):
        SECURITY = "Security"
        JOBS = "Jobs"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    category = models.CharField(max_length=20, choices=Category.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    state = models.CharField(max_length=20, choices=State.choices, default=State.NEW, db_index=True)
    affected_resource_id = models.CharField(max_length=512, db_index=True)
    description = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    raised_at = models.DateTimeField(db_index=True)
    updated_at = models.DateTimeField()
    emailed = models.BooleanField(default=False)

    class Meta:
        ordering = ["-raised_at"]

    def __str__(self):
        return f"{self.name} ({self.severity}) on {self.affected_resource_id}"


class LabClock(models.Model):
    """The lab clock's offset from real time. One row; absent means real time."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    offset_seconds = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)



# --- Resource Guards and multi-user authorization (reference §1.8, §3.3; decision 3) ------------


class ResourceGuard(models.Model):
    """`Microsoft.DataProtection/resourceGuards`: the security admin's guard over vault operations.

    Its subscription and resource group are kept as its resource id (``security`` knows no portal
    models); its region is a region name ("eastus"). ``vault_critical_operation_exclusions`` lists
    the operations the guard does **not** protect (the API's ``vaultCriticalOperationExclusionList``);
    the two mandatory ones can never be in it. Without approvers, access requests are approved
    automatically (``allowAutoApprovals``).
    """

    RESOURCE_TYPE = operations.RESOURCE_GUARD_TYPE

    name = models.CharField(max_length=100)
    resource_group_id = models.CharField(max_length=512, db_index=True)
    region = models.CharField(max_length=40)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=dict, blank=True)
    vault_critical_operation_exclusions = models.JSONField(default=list, blank=True)
    approvers = models.ManyToManyField(Principal, blank=True, related_name="approver_of_guards")
    resource_id = models.CharField(max_length=512, unique=True, editable=False)
    created_by = models.ForeignKey(Principal, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        self.resource_id = self.build_resource_id()
        super().save(*args, **kwargs)

    def build_resource_id(self) -> str:
        return f"{self.resource_group_id.rstrip('/')}/providers/{self.RESOURCE_TYPE}/{self.name}"

    @property
    def subscription_id(self) -> str:
        """The subscription's resource id (``/subscriptions/{id}``)."""
        parts = self.resource_group_id.strip("/").split("/")
        return f"/subscriptions/{parts[1]}" if len(parts) >= 2 else ""

    @property
    def resource_group_name(self) -> str:
        return self.resource_group_id.rstrip("/").rsplit("/", 1)[-1]


class ResourceGuardProxy(models.Model):
    """`backupVaults/{vault}/backupResourceGuardProxies/DppResourceGuardProxy`: a vault's MUA link.

    ``protected_resource_id`` is the vault's resource id (one guard per vault).
    """

    DEFAULT_NAME = "DppResourceGuardProxy"

    protected_resource_id = models.CharField(max_length=512, unique=True)
    guard = models.ForeignKey(ResourceGuard, on_delete=models.PROTECT, related_name="proxies")
    name = models.CharField(max_length=100, default=DEFAULT_NAME)
    linked_by = models.ForeignKey(Principal, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    linked_at = models.DateTimeField()

    class Meta:
        ordering = ["protected_resource_id"]
        verbose_name_plural = "resource guard proxies"

    def __str__(self):
        return f"{self.protected_resource_id} -> {self.guard.name}"

    @property
    def resource_id(self) -> str:
        return f"{self.protected_resource_id}/backupResourceGuardProxies/{self.name}"

    @property
    def protected_resource_name(self) -> str:
        return self.protected_resource_id.rstrip("/").rsplit("/", 1)[-1]


class AccessRequest(models.Model):
    """A just-in-time request for Backup MUA Operator on a Resource Guard (PIM's activation request).

    Approval creates a time-bound RoleAssignment (``role_assignment``) that counts as absent the
    moment ``expires_at`` passes; `security.mua.close_expired_grants` then marks it Expired.
    """

    class State(models.TextChoices):
        PENDING = "Pending", "Pending approval"
        APPROVED = "Approved", "Approved"
        REJECTED = "Rejected", "Rejected"
        EXPIRED = "Expired", "Expired"
        CANCELLED = "Cancelled", "Cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    guard = models.ForeignKey(ResourceGuard, on_delete=models.CASCADE, related_name="access_requests")
    requester = models.ForeignKey(Principal, on_delete=models.CASCADE, related_name="access_requests")
    role = models.ForeignKey(RoleDefinition, on_delete=models.PROTECT, related_name="+")
    justification = models.TextField()
    duration = models.DurationField()
    # What the requester was doing when refused (optional): the critical operation and its target.
    operation = models.CharField(max_length=300, blank=True)
    target_resource_id = models.CharField(max_length=512, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING, db_index=True)
    decided_by = models.ForeignKey(Principal, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    auto_approved = models.BooleanField(default=False)
    # Self-study: the real person who role-played the approver (``decided_by``) and decided for them.
    role_played_by = models.ForeignKey(Principal, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decision_comment = models.TextField(blank=True)
    created_at = models.DateTimeField(db_index=True)  # lab time
    decided_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)  # end of the granted access
    closed_at = models.DateTimeField(null=True, blank=True)
    role_assignment = models.OneToOneField(
        RoleAssignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="access_request"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "expires_at"])]

    def __str__(self):
        return f"{self.requester} → {self.role} on {self.guard} ({self.state})"
