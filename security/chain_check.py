"""Checking the activity log's chain: the hourly check, "Verify now" and what the Activity log page shows.

`run_check` walks the chain (`security.chain.walk`), stores the outcome in `ActivityLogCheck` (one row)
and, the first time a break is found, raises the **Activity log tampered** alert (Sev0, at the root scope)
and logs it: one alert per break, however many checks find it again. `verify_now` is the same check asked
for by a person, a guarded operation (`Strongroom.ActivityLog/verify/action`: Owner and Contributor at the
root may; read-only roles may not).
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from security import chain, context, scopes
from security import operations as ops
from security.audit import guarded, record
from security.models import ActivityLogCheck, ActivityLogEntry, Alert
from security.services import raise_alert, system_principal

TAMPERED_ALERT = "Activity log tampered"
KIND_LABELS = {chain.EDITED: "edited", chain.DELETED: "deleted", chain.INSERTED: "inserted"}


def what_to_do(check: ActivityLogCheck | None) -> str:
    """What a person should do about a break (the alert and the page say it)."""
    since = f" (last found unbroken {check.verified_at:%Y-%m-%d %H:%M} UTC)" if check and check.verified_at else ""
    return ("Someone with rights on the database changed the activity log outside Strongroom. Keep the database as "
            "it is (it is the evidence), find who had access to it, and compare the entries around the break with a "
            f"backup of the database taken before the break{since}. Strongroom cannot repair the entries; new "
            "ones go on being chained after them, and this break stays reported.")


def latest() -> ActivityLogCheck | None:
    return ActivityLogCheck.objects.filter(pk=1).first()


def run_check(*, chunk_size: int = 5000) -> ActivityLogCheck:
    """Walk the whole chain, store the outcome and raise the alert for a break found for the first time.

    Outside a transaction, entries whose writer died between its commit and their seal are sealed first."""
    if not transaction.get_connection().in_atomic_block:
        chain.seal_pending()
    with transaction.atomic():
        ActivityLogCheck.objects.bulk_create([ActivityLogCheck(pk=1, state="", checked_at=timezone.now())],
                                             ignore_conflicts=True)
        row = ActivityLogCheck.objects.select_for_update().get(pk=1)  # one check at a time
        checkpoint = (row.verified_sequence, row.verified_hash) if row.verified_sequence else None
        walked = chain.walk(checkpoint, chunk_size=chunk_size)
        row.checked_at, row.entries_checked, row.seconds = timezone.now(), walked.entries, walked.seconds
        found = walked.first_break
        if found is None:
            row.state = ActivityLogCheck.State.VERIFIED
            row.break_kind, row.break_sequence, row.break_detail = "", None, ""
            row.verified_sequence, row.verified_hash = walked.last_sequence, walked.last_hash
            row.verified_at = row.checked_at
        else:
            row.state = ActivityLogCheck.State.BROKEN
            row.break_kind, row.break_sequence, row.break_detail = found.kind, found.sequence, found.detail
        row.save()
        if found is not None:
            _alert_once(found, row)
    return row


def _alert_once(found: chain.Break, row: ActivityLogCheck) -> None:
    if Alert.objects.filter(name=TAMPERED_ALERT, details__breakKey=found.key).exists():
        return
    headline = f"The activity log's chain is broken at entry #{found.sequence}: {KIND_LABELS[found.kind]}."
    details = {"breakKey": found.key, "kind": found.kind, "sequence": found.sequence, "detail": found.detail,
               "entriesChecked": row.entries_checked}
    raise_alert(name=TAMPERED_ALERT, category=Alert.Category.SECURITY, severity=Alert.Severity.SEV0,
                resource_id=scopes.ROOT, description=f"{headline} {found.detail} {what_to_do(row)}", details=details)
    # The finding is the system's own, also when a person's Verify now found it (their entry says they asked).
    with context.acting(None, correlation=context.correlation_id()):
        record(system_principal(), ops.ACTIVITY_LOG_VERIFY, scopes.ROOT, status=ActivityLogEntry.Status.FAILED,
               sub_status="Conflict", level=ActivityLogEntry.Level.CRITICAL, message=f"{headline} {found.detail}",
               details=details)


def verify_now(principal) -> ActivityLogCheck:
    """"Verify now" on the Activity log page: the same check, asked for (and logged) as ``principal``."""
    with guarded(principal, ops.ACTIVITY_LOG_VERIFY, scopes.ROOT) as op:
        row = run_check()
        op.details.update({"state": row.state, "entriesChecked": row.entries_checked})
        if row.state == ActivityLogCheck.State.BROKEN:
            op.details.update({"breakKind": row.break_kind, "breakSequence": row.break_sequence})
    return row
