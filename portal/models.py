"""Tenancy (regions, subscriptions, resource groups), operations, and lab personas.

Every resource row keeps its ARM-style ``resource_id`` so that `security` can decide on it and lists
can filter it with `visible_to(...).q("resource_id")`.
"""

import uuid

from django.db import models
from django.db.models.functions import Lower

from security import operations as ops
from security.models import Principal


class Region(models.Model):
    name = models.CharField(max_length=40, primary_key=True)  # "eastus"
    display_name = models.CharField(max_length=80)  # "East US"
    geography = models.CharField(max_length=80)
    paired_region = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["display_name"]

    def __str__(self):
        return self.display_name


class ArmResource(models.Model):
    """Base of every row that is an ARM resource (a subscription, a resource group, a vault, a subnet, ...).

    Its ``resource_id`` is built on every save by `build_resource_id` from the fields it is made of, so a
    rename or a move never leaves a stale id behind.
    """

    resource_id = models.CharField(max_length=512, unique=True, editable=False)

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        self.resource_id = self.build_resource_id()
        super().save(*args, **kwargs)

    def build_resource_id(self) -> str:
        raise NotImplementedError


class Subscription(ArmResource):
    RESOURCE_TYPE = ops.SUBSCRIPTION_TYPE

    subscription_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    display_name = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["display_name"]

    def build_resource_id(self) -> str:
        return f"/subscriptions/{self.subscription_id}"

    @property
    def name(self) -> str:
        return self.display_name


class ResourceGroup(ArmResource):
    RESOURCE_TYPE = ops.RESOURCE_GROUP_TYPE

    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="resource_groups")
    name = models.CharField(max_length=90)
    region = models.ForeignKey(Region, on_delete=models.PROTECT)
    tags = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(ArmResource.Meta):
        constraints = [
            models.UniqueConstraint(Lower("name"), "subscription", name="unique_rg_name_per_subscription")
        ]

    def build_resource_id(self) -> str:
        return f"{self.subscription.resource_id}/resourceGroups/{self.name}"


class TrackedResource(ArmResource):
    """Base of every resource that lives in a resource group (vaults, accounts, volumes, ...).

    Subclasses set ``RESOURCE_TYPE`` ("Microsoft.Storage/storageAccounts") and get their resource id
    built on save: ``{resource group id}/providers/{RESOURCE_TYPE}/{name}``.
    """

    RESOURCE_TYPE = ""

    name = models.CharField(max_length=100)
    resource_group = models.ForeignKey(ResourceGroup, on_delete=models.PROTECT, related_name="+")
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+")
    tags = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(ArmResource.Meta):
        abstract = True

    def build_resource_id(self) -> str:
        return f"{self.resource_group.resource_id}/providers/{self.RESOURCE_TYPE}/{self.name}"

    @property
    def subscription(self):
        return self.resource_group.subscription


class ChildResource(ArmResource):
    """Base of a resource that lives below another one (a container below its storage account, a subnet
    below its VNet, a private endpoint connection below its vault).

    Subclasses set ``PARENT`` (the name of the foreign key to the parent) and ``CHILD_PATH``
    ("blobServices/default/containers"); their resource id is built on save,
    ``{parent's resource id}/{CHILD_PATH}/{name}``, and they are in their parent's resource group and region.
    """

    PARENT = ""
    CHILD_PATH = ""

    class Meta(ArmResource.Meta):
        abstract = True

    def build_resource_id(self) -> str:
        return f"{self.parent.resource_id}/{self.CHILD_PATH}/{self.name}"

    @property
    def parent(self):
        return getattr(self, self.PARENT)

    @property
    def resource_group(self):
        return self.parent.resource_group

    @property
    def region(self):
        return self.parent.region


class Operation(models.Model):
    """A long-running request that is not a job (creating a vault, say), with its notification."""

    class Status(models.TextChoices):
        IN_PROGRESS = "InProgress", "In progress"
        SUCCEEDED = "Succeeded", "Succeeded"
        FAILED = "Failed", "Failed"
        # Access-request notifications report the request's state, not a success: a request waiting
        # for approval is "Pending approval" (the AccessRequest states and labels).
        PENDING = "Pending", "Pending approval"
        APPROVED = "Approved", "Approved"
        REJECTED = "Rejected", "Rejected"
        EXPIRED = "Expired", "Expired"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    principal = models.ForeignKey(Principal, on_delete=models.CASCADE, related_name="+")
    title = models.CharField(max_length=300)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.IN_PROGRESS)
    message = models.TextField(blank=True)
    resource_id = models.CharField(max_length=512, blank=True)
    link = models.CharField(max_length=512, blank=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    dismissed = models.BooleanField(default=False)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["principal", "dismissed", "-started_at"])]

    @property
    def is_finished(self) -> bool:
        return self.status != self.Status.IN_PROGRESS


class LabPersona(models.Model):
    """A lab role a Lab Instructor can play: a principal with a title and a short description."""

    principal = models.OneToOneField(Principal, on_delete=models.CASCADE, related_name="persona")
    key = models.SlugField(unique=True)  # "backup-admin"
    title = models.CharField(max_length=100)  # "Backup admin"
    description = models.CharField(max_length=300, blank=True)
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        # Who may play a persona is RBAC's answer (the data action Strongroom.Lab/personas/assume/action,
        # role "Lab Instructor"), not a Django permission.
        ordering = ["order", "title"]

    def __str__(self):
        return self.title


class AsyncOperation(models.Model):
    """An API request's long-running operation, polled at its ``Azure-AsyncOperation`` URL.

    One that follows a Job (``job_id``) takes the job's outcome when the job ends; see
    ``portal.api.lro``."""

    class Status(models.TextChoices):
        IN_PROGRESS = "InProgress", "In progress"
        SUCCEEDED = "Succeeded", "Succeeded"
        FAILED = "Failed", "Failed"
        CANCELED = "Canceled", "Canceled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    principal = models.ForeignKey(Principal, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=200)  # the ARM action it performs
    subscription_id = models.CharField(max_length=36)
    location = models.CharField(max_length=40)
    resource_id = models.CharField(max_length=512, blank=True)
    job_id = models.CharField(max_length=64, blank=True, db_index=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.IN_PROGRESS)
    error = models.JSONField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    @property
    def is_finished(self) -> bool:
        return self.status != self.Status.IN_PROGRESS
