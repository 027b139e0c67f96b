"""Protection: backup policies, backup instances, recovery points and jobs.

Stored states are the API's enums (reference §1.3–1.7); the portal shows their labels. Every change
goes through the services of a feature package (`protection.<feature>.services`); the `Job` row is
the source of truth for work on the workers.
"""

from __future__ import annotations

import datetime as dt
import uuid

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from protection import datasource_types
from security.models import Principal
from security.operations import POLICY_TYPE


class BackupPolicy(models.Model):
    """`backupVaults/backupPolicies`: policyRules kept in the API's JSON shape."""

    vault = models.ForeignKey("vaults.BackupVault", on_delete=models.CASCADE, related_name="backup_policies")
    name = models.CharField(max_length=150)
    datasource_type = models.CharField(max_length=100, choices=datasource_types.CHOICES)
    policy_rules = models.JSONField()
    resource_id = models.CharField(max_length=600, unique=True, editable=False)
    created_by = models.ForeignKey(Principal, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "backup policies"
        constraints = [models.UniqueConstraint(Lower("name"), "vault", name="unique_policy_name_per_vault")]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        self.resource_id = f"{self.vault.resource_id}/backupPolicies/{self.name}"
        super().save(*args, **kwargs)

    @property
    def parsed(self):
        from protection.policy_rules import Policy

        return Policy(self.policy_rules)

    @property
    def datasource(self) -> datasource_types.DatasourceType:
        return datasource_types.get(self.datasource_type)

    def as_api(self) -> dict:
        return {
            "id": self.resource_id,
            "name": self.name,
            "type": POLICY_TYPE,
            "properties": {
                "objectType": "BackupPolicy",
                "datasourceTypes": [self.datasource_type],
                "policyRules": self.policy_rules,
            },
        }


class ProtectionState(models.TextChoices):
    """`currentProtectionState` (reference §1.4), with portal labels."""

    CONFIGURING = "ConfiguringProtection", "Configuring protection"
    CONFIGURING_FAILED = "ConfiguringProtectionFailed", "Configuring protection failed"
    CONFIGURED = "ProtectionConfigured", "Protection configured"
    BACKUPS_SUSPENDED = "BackupSchedulesSuspended", "Backups suspended (retain as per policy)"
    STOPPED = "ProtectionStopped", "Protection stopped (retain forever)"
    PROTECTION_ERROR = "ProtectionError", "Protection error"
    UPDATING = "UpdatingProtection", "Updating protection"
    SOFT_DELETING = "SoftDeleting", "Soft deleting"
    SOFT_DELETED = "SoftDeleted", "Soft deleted"


# The states retention runs in: protection configured or suspended ("Retain as per policy"); it stops for
# ProtectionStopped (retain forever: no expiry anyway) and for soft-deleted instances (issue 10).
RETENTION_STATES = [
    ProtectionState.CONFIGURED, ProtectionState.BACKUPS_SUSPENDED, ProtectionState.PROTECTION_ERROR,
    ProtectionState.UPDATING, ProtectionState.CONFIGURING_FAILED,
]


# The reasons a person may give for stopping backup or deleting backup data (``BackupInstance.delete_reason``).
STOP_REASONS = ["Decommissioned", "Moved to another backup solution", "Not needed any more", "Others"]


class BackupInstance(models.Model):
    """`backupVaults/backupInstances`: one protected datasource, its policy and its state."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    vault = models.ForeignKey("vaults.BackupVault", on_delete=models.PROTECT, related_name="backup_instances")
    name = models.CharField(max_length=200)  # friendlyName / "Backup instance name"
    datasource_type = models.CharField(max_length=100, choices=datasource_types.CHOICES)
    # dataSourceInfo: the protected resource (storage account, Elastic SAN volume, PostgreSQL server)
    datasource_resource_id = models.CharField(max_length=600, db_index=True)
    datasource_name = models.CharField(max_length=200)
    datasource_location = models.CharField(max_length=40)
    # dataSourceSetInfo: the parent (Elastic SAN instance); empty when the datasource is the set
    datasource_set_resource_id = models.CharField(max_length=600, blank=True)
    policy = models.ForeignKey(BackupPolicy, on_delete=models.PROTECT, related_name="backup_instances")
    protection_state = models.CharField(
        max_length=40, choices=ProtectionState.choices, default=ProtectionState.CONFIGURING, db_index=True
    )
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    # AzureOperationalStoreParameters.resourceGroupId (Elastic SAN snapshots)
    snapshot_resource_group_id = models.CharField(max_length=600, blank=True)
    # AdlsBlobBackupDatasourceParameters.containersList; empty list with all_containers = all of them
    containers = models.JSONField(default=list, blank=True)
    excluded_containers = models.JSONField(default=list, blank=True)
    all_containers = models.BooleanField(default=False)
    # Scheduling: the dispatcher asks one indexed question — which configured instances are due?
    next_backup_at = models.DateTimeField(null=True, blank=True)
    last_scheduled_slot = models.DateTimeField(null=True, blank=True)
    # Soft delete (deletionInfo)
    deleted_at = models.DateTimeField(null=True, blank=True)
    scheduled_purge_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # When the purge schedule found it past ``scheduled_purge_at`` (lab time): recorded, so the purge
    # goes ahead and Undelete is refused even if the lab clock is then moved back before that time.
    purge_started_at = models.DateTimeField(null=True, blank=True)
    delete_reason = models.CharField(max_length=200, blank=True)
    delete_comments = models.TextField(blank=True)
    resource_id = models.CharField(max_length=700, unique=True, editable=False)
    created_by = models.ForeignKey(Principal, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(Lower("name"), "vault", name="unique_instance_name_per_vault"),
            # A datasource is protected once per vault; a soft-deleted one still counts (reference §3.2).
            models.UniqueConstraint(fields=["vault", "datasource_resource_id"], name="one_instance_per_datasource_per_vault"),
        ]
        indexes = [models.Index(fields=["protection_state", "next_backup_at"], name="instance_due_idx"),
                   # A vault's Backup instances blade: the page in name order, walked (selectors.instance_page).
                   models.Index(fields=["vault", "name"], name="instance_vault_name_idx")]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        self.resource_id = f"{self.vault.resource_id}/backupInstances/{self.name}"
        super().save(*args, **kwargs)

    @property
    def datasource(self) -> datasource_types.DatasourceType:
        return datasource_types.get(self.datasource_type)

    @property
    def protection_status(self) -> str:
        """`protectionStatus.status`, the coarser API enum."""
        mapping = {
            ProtectionState.BACKUPS_SUSPENDED: "ProtectionStopped",
            ProtectionState.PROTECTION_ERROR: "ProtectionConfigured",
            ProtectionState.UPDATING: "ProtectionConfigured",
        }
        return mapping.get(self.protection_state, self.protection_state)

    @property
    def is_soft_deleted(self) -> bool:
        return self.protection_state in (ProtectionState.SOFT_DELETING, ProtectionState.SOFT_DELETED)


class RecoveryPoint(models.Model):
    """`recoveryPoints` (AzureBackupDiscreteRecoveryPoint) and where its bytes are."""

    class State(models.TextChoices):
        COMPLETED = "Completed"
        PARTIAL = "Partial"

    class Datastore(models.TextChoices):
        OPERATIONAL = "OperationalStore", "Operational tier (snapshot)"
        VAULT = "VaultStore", "Vault-standard"
        ARCHIVE = "ArchiveStore", "Vault-archive"

    class Health(models.TextChoices):
        NOT_VERIFIED = "NotVerified", "Not verified"
        HEALTHY = "Healthy", "Healthy"
        DAMAGED = "Damaged", "Damaged"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)  # recoveryPointId
    instance = models.ForeignKey(BackupInstance, on_delete=models.CASCADE, related_name="recovery_points")
    recovery_point_time = models.DateTimeField(db_index=True)
    datastore = models.CharField(max_length=20, choices=Datastore.choices)
    policy_name = models.CharField(max_length=150)
    rule_name = models.CharField(max_length=100)  # the backup rule, e.g. BackupDaily
    retention_tag = models.CharField(max_length=50)
    expiry_time = models.DateTimeField(null=True, blank=True, db_index=True)  # None: kept forever
    # When retention found it past ``expiry_time`` (lab time): recorded, so it is deleted even if the
    # lab clock is then moved back before its expiry (an expired point never comes back).
    expired_at = models.DateTimeField(null=True, blank=True)
    # --- re-dating (issue 21): soft delete of points a shorter retention expired (reference §3.2) ---
    # Set when a policy change made the point expire: it is "being soft deleted" (not restorable) and
    # ``expiry_time`` then holds the end of the vault's soft-delete period, when retention purges it.
    # Raising retention again before then clears it (protection.redating).
    soft_deleted_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.COMPLETED)
    is_user_triggered = models.BooleanField(default=False)
    # The engine's snapshot (manifest) id in the vault store; for Elastic SAN, in the operational
    # store of the snapshot resource group, with the Snapshot resource's id beside it.
    manifest_id = models.CharField(max_length=100)
    # Every engine snapshot the point is made of (an ADLS point has one per container, a PostgreSQL
    # point one for the globals and one per database): [{"item": "documents", "kind": "tree", "id": ...}].
    # ``manifest_id`` is the first of them.
    manifests = models.JSONField(default=list, blank=True)
    snapshot_resource_id = models.CharField(max_length=700, blank=True)
    logical_bytes = models.BigIntegerField(default=0)
    stored_bytes = models.BigIntegerField(default=0)
    transferred_bytes = models.BigIntegerField(default=0)
    item_count = models.BigIntegerField(default=0)
    # Where copies live: [{"region": "eastus", "role": "primary"}, {"region": "westus", "role": "secondary", ...}]
    copies = models.JSONField(default=list, blank=True)
    # When the secondary-region copy was completed and verified (None: not replicated yet). Cross Region
    # Restore lists and restores only points that have it; the replication lag is read from it.
    secondary_copied_at = models.DateTimeField(null=True, blank=True, db_index=True)
    health = models.CharField(max_length=20, choices=Health.choices, default=Health.NOT_VERIFIED)
    verified_at = models.DateTimeField(null=True, blank=True)
    verify_details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # --- archive tier (issue 21): when the point moved to the vault-archive store, and its temporary
    # rehydrated copy in the standard store (`protection.tiering`); rehydrationStatus is the API's enum.
    archived_at = models.DateTimeField(null=True, blank=True)
    rehydration_status = models.CharField(max_length=30, blank=True)  # CREATE_IN_PROGRESS, COMPLETED, ...
    rehydration_priority = models.CharField(max_length=20, blank=True)  # Standard | High
    rehydration_ready_at = models.DateTimeField(null=True, blank=True)  # restorable from (the priority's delay)
    rehydration_expiry_time = models.DateTimeField(null=True, blank=True, db_index=True)  # copy removed then
    # --- end archive tier

    class Meta:
        ordering = ["-recovery_point_time"]
        indexes = [models.Index(fields=["instance", "-recovery_point_time"], name="rp_instance_time_idx")]

    @property
    def name(self) -> str:
        return str(self.id)

    # --- archive tier (issue 21)
    @property
    def is_archived(self) -> bool:
        return self.datastore == self.Datastore.ARCHIVE

    def is_rehydrated(self, now=None) -> bool:
        """An archived point whose rehydrated copy is in the standard store, past its priority's delay (the
        scheduled check marks it COMPLETED then; a lab clock moved back keeps it so) and not yet removed."""
        from security import clock

        now = now or clock.now()
        return (self.is_archived and self.rehydration_status == "COMPLETED"
                and (self.rehydration_expiry_time is None or self.rehydration_expiry_time > now))
    # --- end archive tier

    @property
    def is_soft_deleted(self) -> bool:
        """Being soft deleted: a shorter retention expired it; purged at ``expiry_time`` (issue 21)."""
        return self.soft_deleted_at is not None

    @property
    def resource_id(self) -> str:
        """`.../backupInstances/{bi}/recoveryPoints/{id}`: the scope guards and the activity log use."""
        return f"{self.instance.resource_id}/recoveryPoints/{self.id}"


class JobOperation(models.TextChoices):
    BACKUP = "Backup"
    RESTORE = "Restore"
    CONFIGURE_PROTECTION = "ConfigureProtection", "Configure protection"
    UNCONFIGURE = "UnConfigure", "Delete backup data"
    RETENTION = "Retention"
    VERIFY = "Verify"
    REPLICATION = "Replication"
    PURGE = "Purge"
    # archive tier (issue 21): moving a point to the vault-archive store, and copying it back for a restore
    TIERING = "Tiering", "Move to archive"
    REHYDRATE = "Rehydrate"


class JobCategory(models.TextChoices):
    BACKUP = "Backup"
    RESTORE = "Restore"
    TIERING = "Tiering"
    MANAGEMENT = "Management"


class JobStatus(models.TextChoices):
    """`status` of AzureBackupJob (reference §1.7)."""

    IN_PROGRESS = "InProgress", "In progress"
    COMPLETED = "Completed", "Completed"
    COMPLETED_WITH_WARNINGS = "CompletedWithWarnings", "Completed with warnings"
    FAILED = "Failed", "Failed"
    CANCELLING = "Cancelling", "Cancelling"
    CANCELLED = "Cancelled", "Cancelled"


TERMINAL_JOB_STATUSES = (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_WARNINGS, JobStatus.FAILED, JobStatus.CANCELLED)


def _real_time_of(start_time: dt.datetime) -> dt.datetime:
    from security import clock

    return start_time - dt.timedelta(seconds=clock.offset_seconds())


class JobQuerySet(models.QuerySet):
    def bulk_create(self, objs, *args, **kwargs):
        for job in objs:
            if job.real_start_time is None and job.start_time is not None:
                job.real_start_time = _real_time_of(job.start_time)
        return super().bulk_create(objs, *args, **kwargs)


class Job(models.Model):
    """Every backup, restore, configure-protection, delete, retention, verify or replication run.

    Created by a service (status InProgress, unclaimed); a worker claims it with a compare-and-set on
    ``claimed_at`` and writes progress and a heartbeat; the reconciler fails or re-runs jobs whose
    heartbeat stopped. A scheduled backup carries its ``scheduled_time``, unique per instance, so two
    dispatchers or a redelivered message can never create or run it twice.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    vault = models.ForeignKey("vaults.BackupVault", on_delete=models.CASCADE, related_name="jobs")
    instance = models.ForeignKey(BackupInstance, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    instance_name = models.CharField(max_length=200, blank=True)
    datasource_type = models.CharField(max_length=100, choices=datasource_types.CHOICES, blank=True)
    datasource_name = models.CharField(max_length=200, blank=True)
    operation = models.CharField(max_length=40, choices=JobOperation.choices)
    category = models.CharField(max_length=20, choices=JobCategory.choices)
    status = models.CharField(max_length=30, choices=JobStatus.choices, default=JobStatus.IN_PROGRESS)
    is_user_triggered = models.BooleanField(default=False)
    initiated_by = models.ForeignKey(Principal, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    initiated_by_name = models.CharField(max_length=300, blank=True)  # "Ben Admin" or "Schedule"
    scheduled_time = models.DateTimeField(null=True, blank=True)
    rule_name = models.CharField(max_length=100, blank=True)
    retention_tag = models.CharField(max_length=50, blank=True)
    parameters = models.JSONField(default=dict, blank=True)  # restore target, recovery point, ...
    start_time = models.DateTimeField(db_index=True)
    # The real moment the job started (``start_time`` minus the lab clock's offset then). Lists sort
    # by it: a job stamped while the lab clock was ahead happened *before* the jobs run after "Reset
    # to real time", so it must not sit above them; with a clock that only moved forward the order is
    # the same as by ``start_time``.
    real_start_time = models.DateTimeField()
    end_time = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The job's message: when it last reached the broker, how often the reconciler re-sent it, and why
    # it could not be sent (the broker was down: the job stays queued and the reconciler sends it).
    sent_at = models.DateTimeField(null=True, blank=True)
    resends = models.PositiveSmallIntegerField(default=0)
    queue_error = models.CharField(max_length=500, blank=True)
    cancel_requested = models.BooleanField(default=False)
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(null=True, blank=True)
    items_done = models.BigIntegerField(default=0)
    items_total = models.BigIntegerField(null=True, blank=True)
    current_item = models.CharField(max_length=1000, blank=True)
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    recovery_point = models.ForeignKey(RecoveryPoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    extended_info = models.JSONField(default=dict, blank=True)  # summary, warnings, links

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-real_start_time", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["instance", "scheduled_time"],
                condition=Q(scheduled_time__isnull=False),
                name="one_job_per_instance_and_scheduled_time",
            ),
            # One backup per instance at a time, whoever starts it (Backup now or the schedule).
            models.UniqueConstraint(
                fields=["instance"],
                condition=Q(operation="Backup", status__in=["InProgress", "Cancelling"]),
                name="one_active_backup_per_instance",
            ),
        ]
        indexes = [
            models.Index(fields=["vault", "-start_time"], name="job_vault_time_idx"),
            models.Index(fields=["vault", "-real_start_time"], name="job_vault_real_time_idx"),
            models.Index(fields=["-real_start_time"], name="job_real_time_idx"),
            models.Index(fields=["status", "heartbeat_at"], name="job_status_heartbeat_idx"),
        ]

    def __str__(self):
        return f"{self.operation} {self.instance_name} ({self.status})"

    def save(self, *args, **kwargs):
        if self.real_start_time is None and self.start_time is not None:
            self.real_start_time = _real_time_of(self.start_time)
        super().save(*args, **kwargs)

    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL_JOB_STATUSES

    @property
    def resource_id(self) -> str:
        """`.../backupVaults/{vault}/backupJobs/{id}` (reference §1.7)."""
        return f"{self.vault.resource_id}/backupJobs/{self.id}"

    @property
    def percent(self) -> int | None:
        if self.status in (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_WARNINGS):  # all done, some warned
            return 100
        if self.bytes_total:
            return min(99, int(self.bytes_done * 100 / self.bytes_total))
        if self.items_total:
            return min(99, int(self.items_done * 100 / self.items_total))
        return None

    @property
    def duration(self) -> dt.timedelta | None:
        if self.end_time:
            return self.end_time - self.start_time
        return None
