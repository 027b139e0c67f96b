"""Re-dating existing recovery points when their retention changes (issue 21; reference §5.5, §3.2).

Azure applies a policy's new retention to the recovery points already taken: editing a policy's
retention re-dates the points of every instance that uses it, and moving an instance to another policy
("Change Policy" / "Edit backup instance") re-dates that instance's points. The policy and instance
services call `redate` inside their own guarded change (same transaction, same lock), so the activity
log entry reports what moved and a refusal changes nothing.

For each point still subject to retention (an instance in `RETENTION_STATES`, a point with an expiry,
not already recorded as expired):

* its expiry is recomputed from its retention tag (the rule of the same name in the new policy; a tag
  the policy lacks falls back to Default, as Resume backup does) and its ``recovery_point_time``;
* **immutability** (vault-tier data of an Enabled or Enabled-and-locked vault): a point's expiry only
  ever moves later, and the store's retain-until of its snapshots follows it (`_retain_in_store`). The
  Immutability guard already refuses a policy change that shortens a rule; this holds per point too (a
  point carried over from an older, longer policy keeps its expiry);
* a point the new, shorter retention has **already expired** is not purged at once: it goes
  **soft-deleted** ("being soft deleted") for the vault's soft-delete retention period — its
  ``expiry_time`` becomes the end of that period, when the ordinary retention run purges it (engine
  data first, then the row) on Strongroom's clock. It cannot be restored meanwhile;
* raising retention again before the purge brings a soft-deleted point back: if its recomputed expiry
  is in the future it is no longer soft-deleted and gets that expiry;
* **soft delete Off** on the vault: what Azure does is what it does for every other deletion with the
  feature disabled (reference §3.2) — nothing is kept: points "removed by reducing policy retention"
  go soft-deleted only because soft delete is on, and Azure removes them in its regular clean-up
  (the 24 h SLA), not at the click. So such points take their new, past, expiry and the next
  retention run (every 10 minutes, on Strongroom's clock) deletes them like any expired point;
* **operational-tier** points (Elastic SAN snapshots) are outside soft delete as they are outside
  immutability (reference §3.2: "Snapshots of disks and VMs can still be deleted directly"): they too
  take their new expiry and go at the next retention run.

The work is one SELECT of the affected points (only the columns needed) and bulk UPDATEs of the points
that change (``BULK_BATCH`` rows per statement, see `_write`), whatever the number of points.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import connection

from protection.models import RETENTION_STATES, RecoveryPoint
from protection.policy_rules import Policy, PolicyError, RetentionRule, point_expiry
from security import clock

BULK_BATCH = 1000  # rows per UPDATE … CASE statement
SOFT_DELETED_LABEL = "being soft deleted"  # reference §3.2, the Recovery type column


@dataclass
class Redated:
    """What a re-dating did (the activity log's details and the alert's text)."""

    examined: int = 0
    shorter: int = 0  # expiry moved earlier (including those that now go soft-deleted or expire)
    longer: int = 0  # expiry moved later (including those brought back)
    soft_deleted: int = 0
    brought_back: int = 0
    expire_now: int = 0  # past their new expiry with no soft delete: the next retention run deletes them
    kept_by_immutability: int = 0

    def as_details(self) -> dict:
        return {"recoveryPoints": self.examined, "expiryEarlier": self.shorter, "expiryLater": self.longer,
                "softDeleted": self.soft_deleted, "broughtBack": self.brought_back,
                "expiredWithoutSoftDelete": self.expire_now, "keptByImmutability": self.kept_by_immutability}

    def summary(self) -> str:
        """For the page's message after the change: what happened to the existing points."""
        if not (self.shorter or self.longer):
            return ""
        parts = []
        if self.shorter:
            parts.append(f"{self.shorter} now expire earlier")
        if self.longer:
            parts.append(f"{self.longer} now expire later" + (f" ({self.brought_back} no longer {SOFT_DELETED_LABEL})"
                                                              if self.brought_back else ""))
        if self.soft_deleted:
            parts.append(f"{self.soft_deleted} {'are' if self.soft_deleted != 1 else 'is'} {SOFT_DELETED_LABEL}")
        return f"Existing recovery points re-dated: {', '.join(parts)}."

    def describe(self) -> str:
        """A sentence for the alert (empty when no point got shorter)."""
        if not self.shorter:
            return ""
        parts = [f"{self.shorter} existing recovery point{'s' if self.shorter != 1 else ''} now expire earlier"]
        if self.soft_deleted:
            parts.append(f"{self.soft_deleted} already expired and {'are' if self.soft_deleted != 1 else 'is'} "
                         f"{SOFT_DELETED_LABEL}")
        if self.expire_now:
            parts.append(f"{self.expire_now} already expired and will be deleted (soft delete does not cover them)")
        return "; ".join(parts) + "."


def rule_for(policy: Policy, tag: str) -> RetentionRule:
    """The policy's rule for a point tagged ``tag``; Default when the policy has no such rule."""
    try:
        return policy.rule(tag)
    except PolicyError:
        return policy.default_rule()


@dataclass(frozen=True)
class _VaultRules:
    immutable: bool
    soft_delete_days: int | None  # None: soft delete Off


def _vault_rules(vault) -> _VaultRules:
    days = vault.soft_delete_retention_days if vault.soft_delete_enabled else None
    return _VaultRules(vault.immutability_enabled, days)


def _apply(point: RecoveryPoint, policy: Policy, rules: _VaultRules, now: dt.datetime, done: Redated) -> bool:
    """Re-date one point in memory; True when it changed."""
    # A rule that tiers to archive keeps its points for the archive's retention (point_expiry).
    new = point_expiry(policy.rules, rule_for(policy, point.retention_tag), point.recovery_point_time)
    vault_tier = point.datastore != RecoveryPoint.Datastore.OPERATIONAL
    if point.soft_deleted_at is not None:
        if new <= now:
            return False  # still expired: its soft-delete period (set when it was soft-deleted) stands
        point.soft_deleted_at, point.expiry_time = None, new
        done.longer += 1
        done.brought_back += 1
        return True
    old = point.expiry_time
    if new == old:
        return False
    if new < old and rules.immutable and vault_tier:
        done.kept_by_immutability += 1  # immutability: only ever later (reference §3.1, decision 5)
        return False
    if new > old:
        done.longer += 1
    else:
        done.shorter += 1
    if new <= now < old:  # this change is what expired it
        if rules.soft_delete_days and vault_tier:
            point.soft_deleted_at = now
            point.expiry_time = now + dt.timedelta(days=rules.soft_delete_days)
            done.soft_deleted += 1
            return True
        done.expire_now += 1
    point.expiry_time = new
    return True


def redate(instances, policy_rules: list[dict], vault, *, now: dt.datetime | None = None) -> Redated:
    """Apply ``policy_rules``' retention to the existing recovery points of ``instances`` (a queryset of
    backup instances of ``vault``). Call inside the caller's guarded transaction."""
    now = now or clock.now()
    policy = Policy(policy_rules)
    rules = _vault_rules(vault)
    points = (RecoveryPoint.objects
              .filter(instance__in=instances.filter(protection_state__in=RETENTION_STATES).values("pk"),
                      expiry_time__isnull=False, expired_at__isnull=True)
              .only("pk", "recovery_point_time", "retention_tag", "expiry_time", "soft_deleted_at", "datastore"))
    done, changed, later = Redated(), [], []
    for point in points:
        done.examined += 1
        before = point.expiry_time
        if _apply(point, policy, rules, now, done):
            changed.append(point)
            if rules.immutable and point.expiry_time > before and point.datastore != RecoveryPoint.Datastore.OPERATIONAL:
                later.append(point.pk)
    _write(changed)
    _retain_in_store(later, vault)
    return done


def _retain_in_store(point_ids: list, vault) -> None:
    """Immutability: the store retains a point whose expiry moved later until its new expiry, as it retained
    it until the old one (the store's retain-until only ever grows). Inside the caller's transaction, as the
    immutability listener does it: a store that refuses refuses the change."""
    if not point_ids:
        return
    from django.core.exceptions import ValidationError

    from protection.store_retention import retain_in_store
    from vaults.models import ImmutabilityState
    from vaults.store import RetentionError

    mode = "compliance" if vault.immutability_state == ImmutabilityState.LOCKED else "governance"
    try:
        for point in RecoveryPoint.objects.filter(pk__in=point_ids).iterator():
            retain_in_store(point, vault, mode)
    except RetentionError as exc:
        raise ValidationError(f"The vault's store refused to retain a re-dated recovery point: {exc}") from None


def _write(changed: list[RecoveryPoint]) -> None:
    """Store the new expiries, ``BULK_BATCH`` points per UPDATE. On PostgreSQL one ``UPDATE … FROM
    (VALUES …)`` per batch: Django's ``bulk_update`` builds a CASE WHEN per point (about 1 s of Python for
    1,000 points, and a CASE the database scans once per row); elsewhere (SQLite, the embedded default)
    ``bulk_update`` does the same work, only slower."""
    if not changed:
        return
    if connection.vendor != "postgresql":
        RecoveryPoint.objects.bulk_update(changed, ["expiry_time", "soft_deleted_at"], batch_size=BULK_BATCH)
        return
    quote = connection.ops.quote_name
    table, pk = quote(RecoveryPoint._meta.db_table), quote(RecoveryPoint._meta.pk.column)
    expiry, soft = quote("expiry_time"), quote("soft_deleted_at")
    with connection.cursor() as cursor:
        for start in range(0, len(changed), BULK_BATCH):
            batch = changed[start:start + BULK_BATCH]
            rows = ", ".join(["(%s::uuid, %s::timestamptz, %s::timestamptz)"] * len(batch))
            params = [value for point in batch for value in (point.pk, point.expiry_time, point.soft_deleted_at)]
            cursor.execute(f"UPDATE {table} AS p SET {expiry} = v.expiry, {soft} = v.soft FROM (VALUES {rows}) "
                           f"AS v(id, expiry, soft) WHERE p.{pk} = v.id", params)
