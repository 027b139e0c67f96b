"""Lab 4: multi-user authorization with a Resource Guard (seed 004, "Resource Guard"; reference §1.8, §3.3).

The sandbox starts with a Backup vault bv-mua-<code> protecting the source account (one recovery point)
and the Resource Guard guard-<code> that the sandbox's security admin owns in rg-security-<code> and
approves on. The trainee, the backup admin, links the guard, is refused Delete backup data, requests
time-bound access, has it approved by another principal (in self-study: the security admin role-played from
the lab page), deletes the data with the grant, lets the grant end and is refused again.

Paired in a class (``ctx.partner``): the guard guard-<code> that protects the trainee's vault is the
partner's, in the partner's rg-security (they own that group and approve on the guard), and only the
partner's own decision counts: never the trainee's, never a role-play.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from labs import roleplay
from labs.catalogue import CheckResult, Document, Lab, Step, register
from labs.catalogue import protected_vault as pv
from protection import datasource_types
from protection.deletion import services as deletion
from protection.models import ProtectionState
from security import clock, mua
from security import operations as ops
from security.guards import GuardDenied
from security.models import AccessRequest

SLUG = "mua-resource-guard"
POLICY = "adls-daily"
GRANT = "5m"  # lab mode: a grant of five minutes ends while the trainee watches
_DECIDED = (AccessRequest.State.APPROVED, AccessRequest.State.EXPIRED)


def vault_name(ctx) -> str:
    return f"bv-mua-{ctx.names.code}"


def paired(ctx) -> bool:
    """A trainee with a partner in a class: the partner is the security admin of their vault."""
    return ctx.partner is not None and ctx.partner_world is not None


def _home(ctx):
    """Where the guard protecting the trainee's vault is: the partner's sandbox (paired), else their own (None)."""
    return ctx.partner_world if paired(ctx) else None


def partner_label(ctx) -> str:
    return f"{ctx.partner.display_name}, signed in as {ctx.partner.sign_in_name},"


def create_partner_guard(ctx):
    """Paired: the partner's Resource Guard in the partner's security group (they own the group), with the
    partner as its only approver; it protects this trainee's vault."""
    partner, group, code = ctx.partner, ctx.partner_world.security_group, ctx.names.code
    description = (f"Critical operations on the vaults of sandbox {code} ({ctx.trainee.display_name}) need "
                   f"{partner.display_name}'s approval: {ctx.trainee.display_name} selects Request access on the "
                   f"refusal, and {partner.display_name} approves or rejects it in Approvals.")
    return mua.create_resource_guard(partner, resource_group_id=group.resource_id, name=pv.guard_name(code),
                                     region=group.region_id, description=description, approvers=[partner])


def prepare(ctx) -> None:
    ctx = pv.inline(ctx)
    vault = pv.create_vault(ctx, vault_name(ctx))
    instance = pv.protect_account(ctx, vault, pv.create_policy(ctx, vault, POLICY, datasource_types.ADLS))
    pv.back_up(ctx, instance)
    if paired(ctx):
        create_partner_guard(ctx)
    else:
        pv.create_guard(ctx)


def _world(ctx):
    """(vault, its item of the source account, the guard), or a CheckResult saying what is gone."""
    vault, guard = pv.vault_named(ctx, vault_name(ctx)), pv.guard_of(ctx, _home(ctx))
    account = ctx.world.source_account
    item = pv.item_of(vault, account.resource_id if account else None)
    if vault is None:
        return pv.gone(f"The Backup vault {vault_name(ctx)}")
    if guard is None and paired(ctx):
        return CheckResult.missing(
            f"Your partner's Resource Guard {pv.guard_name(ctx.names.code)} is gone from "
            f"{ctx.partner_world.names.security_group}. Reset your sandbox (your partner's is reset with it).")
    if guard is None:
        return pv.gone(f"The Resource Guard {pv.guard_name(ctx.names.code)}")
    if item is None:
        return pv.gone(f"The backup instance {ctx.names.source_account} in {vault.name}")
    return vault, item, guard


def _need(ctx):
    """What a solve needs, or the ValidationError saying what is gone."""
    found = _world(ctx)
    if isinstance(found, CheckResult):
        raise ValidationError(found.message)
    return found


def _requests(ctx, guard):
    return list(AccessRequest.objects.select_related("decided_by", "role_played_by", "role", "guard")
                .filter(requester=ctx.trainee, guard=guard, created_at__gte=ctx.started_at).order_by("created_at"))


def _by_another(ctx, r: AccessRequest) -> bool:
    """Decided by another principal (never the trainee, never the automatic approval of a guard without
    approvers); paired, by the partner themselves (not role-played)."""
    if not r.decided_by_id or r.decided_by_id == ctx.trainee.pk or r.auto_approved:
        return False
    return not paired(ctx) or (r.decided_by_id == ctx.partner.pk and not r.role_played_by_id)


def _approved(ctx, guard) -> list[AccessRequest]:
    """The trainee's requests on the guard that another principal approved (`_by_another`)."""
    return [r for r in _requests(ctx, guard) if r.state in _DECIDED and _by_another(ctx, r)]


def _at(moment) -> str:
    return f"{moment:%H:%M} (lab time)"


# --- 1. link ------------------------------------------------------------------------------------------------


def check_link(ctx) -> CheckResult:
    if paired(ctx):
        return pv.check_link(ctx, vault_name(ctx), _home(ctx), "your partner's")
    return pv.check_link(ctx, vault_name(ctx))


def solve_link(ctx) -> None:
    pv.solve_link(ctx, vault_name(ctx), _home(ctx))


# --- 2. refused ---------------------------------------------------------------------------------------------


def check_refused(ctx) -> CheckResult:
    found = _world(ctx)
    if isinstance(found, CheckResult):
        return found
    vault, item, guard = found
    refused = pv.guard_refusals(ctx, vault, guard, operation=ops.INSTANCE_DELETE)
    if refused:
        return CheckResult.ok(f"The Resource Guard {guard.name} refused Delete backup data of {item.name} at "
                              f"{_at(refused[0].timestamp)}.")
    other = pv.in_vault(ctx, vault, operation=ops.INSTANCE_DELETE, status=pv.FAILED)
    if other:
        return CheckResult.missing(
            f"Your Delete backup data of {item.name} failed, but not because of the Resource Guard "
            f"({other[-1].details.get('guard') or 'the form'}: {other[-1].message[:200]}). With {guard.name} linked, "
            "try again: the refusal must name the Resource Guard.")
    if item.protection_state in (ProtectionState.SOFT_DELETED, ProtectionState.SOFT_DELETING):
        return CheckResult.missing(
            f"The backup data of {item.name} was deleted before the Resource Guard protected it (soft delete kept "
            "it). Undelete it (Backup instances, Protection status Soft deleted, Undelete), then try again.")
    return CheckResult.missing(
        f"Nothing refused yet: in {vault.name} > Backup instances > {item.name}, select Delete (Delete Backup Data), "
        f"type the name of the backup item and select Delete. The Resource Guard {guard.name} must refuse it.")


def solve_refused(ctx) -> None:
    vault, item, guard = _need(ctx)
    if deletion.deletion_preview(ctx.trainee, item).allowed:
        raise ValidationError(f"The Resource Guard {guard.name} does not protect {vault.name} yet: link it first.")
    try:
        deletion.delete_backup_data(ctx.trainee, item, confirm_name=item.name, reason="Others",
                                    comments="Lab: is this protected?")
    except GuardDenied:
        pass  # the refusal is in the activity log: that is the step


# --- 3. request ---------------------------------------------------------------------------------------------


def check_request(ctx) -> CheckResult:
    found = _world(ctx)
    if isinstance(found, CheckResult):
        return found
    _vault, _item, guard = found
    mine = [r for r in _requests(ctx, guard) if r.state != AccessRequest.State.CANCELLED]
    if mine:
        r = mine[-1]
        return CheckResult.ok(f"You asked for {r.role.name} on {guard.name} for {mua.duration_label(r.duration)}.")
    elsewhere = (AccessRequest.objects.filter(requester=ctx.trainee, created_at__gte=ctx.started_at)
                 .exclude(guard=guard).select_related("guard").first())
    if elsewhere is not None:
        return CheckResult.missing(
            f"Your access request is on the Resource Guard '{elsewhere.guard.name}', not on {guard.name}, the guard "
            f"that protects {vault_name(ctx)}. Request access on {guard.name}.")
    return CheckResult.missing(
        f"No access request on {guard.name} yet (a cancelled one does not count): on the refusal select Request "
        "access, give a Justification, choose a Duration (5 minutes is offered in a lab) and select Request access.")


def solve_request(ctx) -> None:
    _vault, item, guard = _need(ctx)
    if mua.pending_request(ctx.trainee, guard) or mua.active_grant(ctx.trainee, guard):
        return
    mua.request_access(ctx.trainee, guard, justification=f"Lab: delete the backup data of {item.name}.", hours=GRANT,
                       operation=ops.INSTANCE_DELETE, target_resource_id=item.resource_id)


# --- 4. approved --------------------------------------------------------------------------------------------


def check_approved(ctx) -> CheckResult:
    found = _world(ctx)
    if isinstance(found, CheckResult):
        return found
    _vault, _item, guard = found
    approved = _approved(ctx, guard)
    if approved:
        r = approved[-1]
        return CheckResult.ok(f"{mua.approvers_label(r)} approved your request: {r.role.name} until "
                              f"{_at(r.expires_at)}.")
    requests = _requests(ctx, guard)
    last = requests[-1] if requests else None
    if paired(ctx):
        return _paired_not_approved(ctx, guard, last)
    if last is not None and last.state == AccessRequest.State.REJECTED:
        return CheckResult.missing(
            f"{mua.approvers_label(last)} rejected your request (“{last.decision_comment}”). Request access again "
            "and have it approved.")
    if last is not None and last.state == AccessRequest.State.PENDING:
        return CheckResult.missing(
            f"Your request on {guard.name} is Pending approval. Another person must approve it: an approver of the "
            f"guard ({', '.join(a.display_name for a in guard.approvers.all())}) in Approvals; in self-study, select "
            "Approve as the security admin on this page (role-play). Nobody approves their own request.")
    return CheckResult.missing(f"No request of yours on {guard.name} is approved yet: request access first.")


def _paired_not_approved(ctx, guard, last) -> CheckResult:
    partner = partner_label(ctx)
    if last is not None and last.state == AccessRequest.State.REJECTED:
        return CheckResult.missing(
            f"{mua.approvers_label(last)} rejected your request (“{last.decision_comment}”). Request access again "
            "(on the refusal, or the Resource Guard's page) and ask them to approve it.")
    if last is not None and last.state == AccessRequest.State.PENDING:
        return CheckResult.missing(
            f"Your request on {guard.name} is Pending approval. Your partner {partner} approves or rejects it in "
            "their own browser, from Approvals: tell them it is waiting. Nobody approves their own request.")
    if last is not None and last.state in _DECIDED:
        return CheckResult.missing(
            f"Your request on {guard.name} was approved by {mua.approvers_label(last)}, not by your partner "
            f"{partner} and in a pair only they decide. When that access ends, request access again and ask them.")
    return CheckResult.missing(f"No request of yours on {guard.name} is approved yet: request access first.")


def solve_approved(ctx) -> None:
    _vault, _item, guard = _need(ctx)
    pending = mua.pending_request(ctx.trainee, guard)
    if pending is None:
        raise ValidationError(f"There is no pending request on {guard.name} to approve: request access first.")
    if paired(ctx):  # the partner's own decision, through the approval service (a Lab Instructor unblocks a pair)
        mua.approve_request(ctx.partner, pending, comment="Approved for the lab (Solve this step).")
        return
    roleplay.decide_as_security_admin(ctx.trainee, pending, approve=True)


# --- 5. delete with the grant -------------------------------------------------------------------------------


def check_delete(ctx) -> CheckResult:
    found = _world(ctx)
    if isinstance(found, CheckResult):
        return found
    vault, item, guard = found
    grants = {str(r.pk) for r in _approved(ctx, guard)}
    used = [e for e in pv.in_vault(ctx, vault, status=pv.SUCCEEDED)
            if (e.details.get("guards") or {}).get("MUA", {}).get("accessRequestId") in grants]
    deleted = [e for e in used if e.operation == ops.INSTANCE_DELETE]
    if deleted:
        return CheckResult.ok(f"Delete backup data of {item.name} went through at {_at(deleted[0].timestamp)} with "
                              f"your access, approved by {deleted[0].details['guards']['MUA'].get('approvedBy')}.")
    if used:
        return CheckResult.missing(
            f"You used your access for {used[-1].operation_name}, not for Delete backup data of {item.name}. "
            "Delete its backup data while your access lasts.")
    if not grants:
        return CheckResult.missing("Have your access request approved first.")
    return CheckResult.missing(
        f"Not yet: while your access lasts, select Delete on {item.name} again (type its name, select Delete). "
        "This time the Resource Guard lets it through, and soft delete keeps the data.")


def solve_delete(ctx) -> None:
    _vault, item, _guard = _need(ctx)
    job = deletion.delete_backup_data(ctx.trainee, item, confirm_name=item.name, reason="Others",
                                      comments="Lab: with approved access")
    ctx.job_started(job)


# --- 6. expired ---------------------------------------------------------------------------------------------


def check_expired(ctx) -> CheckResult:
    found = _world(ctx)
    if isinstance(found, CheckResult):
        return found
    vault, item, guard = found
    grants = _approved(ctx, guard)
    if not grants:
        return CheckResult.missing("Have your access request approved first.")
    now = clock.now()
    active = [g for g in grants if g.expires_at > now]
    if active:
        return CheckResult.missing(
            f"Your access on {guard.name} lasts until {_at(active[-1].expires_at)}. Wait for it to end (My access "
            "requests shows the time left; a Lab Instructor can move the lab clock), then try again.")
    ended = max(g.expires_at for g in grants)
    again = [e for e in pv.guard_refusals(ctx, vault, guard) if e.timestamp >= ended]
    if again:
        return CheckResult.ok(f"Your access ended at {_at(ended)}; at {_at(again[0].timestamp)} the Resource Guard "
                              f"refused {again[0].operation_name} again.")
    if not mua.is_linked(vault.resource_id):
        return CheckResult.missing(
            f"{vault.name} is no longer protected by {guard.name} (its MUA protection was removed): link it again "
            "in Properties > Multi-user authorization, then try Delete once more.")
    return CheckResult.missing(
        f"Your access ended at {_at(ended)}; now be refused again: Undelete {item.name} (Backup instances, Protection "
        f"status Soft deleted, Undelete), then select Delete on it. {guard.name} must refuse it once more.")


def solve_expired(ctx) -> None:
    vault, item, guard = _need(ctx)
    active = mua.active_grant(ctx.trainee, guard)
    if active is not None:
        raise ValidationError(f"The access on {guard.name} lasts until {_at(active.expires_at)}: move the lab clock "
                              "past it first (Lab Instructor).")
    item.refresh_from_db()
    if item.protection_state == ProtectionState.SOFT_DELETED:
        deletion.undelete(ctx.trainee, item)
    try:
        deletion.delete_backup_data(ctx.trainee, item, confirm_name=item.name, reason="Others",
                                    comments="Lab: after the access ended")
    except GuardDenied:
        pass


INSTRUCTIONS_LINK = """\
Your vault `bv-mua-{code}` (in `{backup_group}`) protects the storage account `{source_account}`. The security
admin of your sandbox owns the Resource Guard `guard-{code}` in `{security_group}`; you hold only
**Reader** on it, which is what linking needs and all a backup admin should hold.

1. Open **Backup vaults** and select `bv-mua-{code}`.
2. Select **Properties**; under **Multi-user authorization** select **Update**.
3. Tick **Protect with Resource Guard**, choose **Select Resource Guard** and pick `guard-{code}`.
4. Select **Save**.
"""

INSTRUCTIONS_LINK_PAIRED = """\
Your vault `bv-mua-{code}` (in `{backup_group}`) protects the storage account `{source_account}`. You work
in a pair: your partner **{partner}** (`{partner_username}`) is the security admin for your vault. They own
the Resource Guard `guard-{code}` in their `{partner_security_group}` and approve on it; you hold only
**Reader** on it, which is what linking needs and all a backup admin should hold. (You do the same for
them: `guard-{partner_code}` in your `{security_group}` protects their vault.)

1. Open **Backup vaults** and select `bv-mua-{code}`.
2. Select **Properties**; under **Multi-user authorization** select **Update**.
3. Tick **Protect with Resource Guard**, choose **Select Resource Guard** and pick
   `guard-{code} ({partner_security_group})`: your partner's, not the one in your own group.
4. Select **Save**.
"""

INSTRUCTIONS_REFUSED = """\
Now act as the backup admin on a critical operation.

1. In `bv-mua-{code}`, open **Backup instances** and select `{source_account}`.
2. Select **Delete** (Stop backup with **Delete Backup Data**), type the name of the backup item, pick a
   **Reason** and select **Delete**.
3. Read the refusal: the operation is protected by the Resource Guard and you lack permissions on it.
"""

INSTRUCTIONS_REQUEST = """\
On the refusal (or on the Resource Guard's page) select **Request access**: a time-bound
**Backup MUA Operator** grant on `guard-{code}`. Give a **Justification**, choose a **Duration** (in a
lab, **5 minutes** lets you watch it end) and select **Request access**. **My access requests** shows it
*Pending approval*.
"""

INSTRUCTIONS_REQUEST_PAIRED = INSTRUCTIONS_REQUEST.rstrip() + """ Your partner **{partner}** is notified.
"""

INSTRUCTIONS_APPROVED = """\
Another person must approve: an approver of the guard, in **Approvals**. Nobody approves their own
request (try it: it is refused).

In self-study, play the security admin yourself: below the steps, under **Role-play the security admin**,
select **Approve as the security admin**. The approval is made by the sandbox's security admin and marked
*role-played*, naming you, in the activity log and on the request.
"""

INSTRUCTIONS_APPROVED_PAIRED = """\
A person must approve: your partner **{partner}** (`{partner_username}`), the approver of `guard-{code}`.
They approve or reject your request **in their own browser**, from **Approvals**, with a comment you see:
tell them it is waiting. Nobody approves their own request (try it: it is refused), and in a pair there is
no role-play.

- If they **reject** it, read their comment (here, and in **My access requests**), select **Request
  access** again and ask them once more.
- Meanwhile, decide your partner's request on `guard-{partner_code}` in your own **Approvals**.
"""

INSTRUCTIONS_DELETE = """\
While your access lasts, select **Delete** on `{source_account}` again (type its name, select **Delete**).
The Resource Guard lets it through; the activity log entry names your grant, its requester and approver.
Soft delete keeps the data: the item shows **Soft deleted**.
"""

INSTRUCTIONS_EXPIRED = """\
The grant ends by itself. When **My access requests** shows it *Expired*:

1. In **Backup instances** filter **Protection status** to *Soft deleted*, select `{source_account}` and
   **Undelete** it.
2. Select **Delete** on it once more: the Resource Guard refuses it again.
"""

LAB = register(Lab(
    slug=SLUG,
    title="Multi-user authorization with a Resource Guard",
    summary=("Link the security admin's Resource Guard to your vault, be refused Delete backup data, request "
             "time-bound access, have it approved by another person, succeed, watch the grant expire and be "
             "refused again."),
    learn=("Why the Resource Guard belongs to someone else, and why Reader on it is enough to link it",
           "What a Resource Guard refuses, and how the refusal reads in the activity log",
           "Just-in-time access: Request access, Backup MUA Operator, approval by another principal",
           "That the grant ends by itself: the same operation is refused again"),
    minutes=25,
    document=Document("Securing your Microsoft Azure Backups (Resource Guard)", "004_c5682cf263c5ebe6.txt"),
    prepare=prepare,
    order=40,
    protects=("source_account",),
    paired=True,
    steps=(
        Step("link", "Protect the vault with the Resource Guard", INSTRUCTIONS_LINK, check_link, solve_link,
             hints=("Properties > Multi-user authorization > Update > Protect with Resource Guard.",
                    "Pick guard-{code} from {security_group}: a guard in your own resource group would be one "
                    "you can pass yourself."),
             paired_instructions=INSTRUCTIONS_LINK_PAIRED,
             paired_hints=("Properties > Multi-user authorization > Update > Protect with Resource Guard.",
                           "Pick guard-{code} from {partner_security_group}, your partner's: guard-{partner_code} "
                           "in your own {security_group} is one you can pass yourself.")),
        Step("refused", "Be refused Delete backup data", INSTRUCTIONS_REFUSED, check_refused, solve_refused,
             hints=("Backup instances > {source_account} > Delete.",
                    "Type the backup item's name exactly; the Resource Guard must be the reason of the refusal.")),
        Step("request", "Request time-bound access", INSTRUCTIONS_REQUEST, check_request, solve_request,
             hints=("The refusal page offers Request access; so does the Resource Guard's page.",),
             paired_instructions=INSTRUCTIONS_REQUEST_PAIRED),
        Step("approved", "Have the request approved by another principal", INSTRUCTIONS_APPROVED, check_approved,
             solve_approved,
             hints=("Use Approve as the security admin (role-play) on this page.",
                    "If your request was rejected, request access again."),
             paired_instructions=INSTRUCTIONS_APPROVED_PAIRED,
             paired_hints=("Your partner {partner}, signed in as {partner_username}, decides in Approvals, in their "
                           "own browser.",
                           "If your request was rejected, request access again.")),
        Step("delete", "Delete backup data with the grant", INSTRUCTIONS_DELETE, check_delete, solve_delete,
             hints=("Backup instances > {source_account} > Delete, while My access requests shows the grant Active.",)),
        Step("expired", "Watch the grant expire, and be refused again", INSTRUCTIONS_EXPIRED, check_expired,
             solve_expired,
             needs_time=("This step needs time to pass: your grant must end. Ask for 5 minutes and wait, or ask "
                         "your Lab Instructor to move the lab clock past its end."),
             hints=("Undelete the item first: a soft-deleted item cannot be deleted again.",
                    "Then select Delete on it: the refusal must come after your access ended.")),
    ),
))
