"""Self-study role-play: a trainee alone decides their own access request as their sandbox's built-in
security admin (the principal who owns the sandbox's Resource Guard group and approves on its guard).

The decision goes through the MUA approval service *as that security admin*, so its rules hold (only an
approver of the guard decides, only a pending request). It is marked role-played on the request and in
the activity log (``rolePlayed``, ``rolePlayedBy``), and every entry names the trainee who played the part
(the real person behind the persona, as when an instructor plays one). Role-play decides only requests on
the guard in the trainee's own sandbox's security group: never another sandbox's, never a guard the
trainee made themselves. A trainee paired in a class has none: their partner, a person, decides in their
own browser.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError

from labs.context import LabContext
from labs.models import LabRun, Sandbox, Seat
from labs.sandboxes import SandboxWorld
from security import clock, context, mua, scopes
from security import operations as ops
from security.audit import guarded
from security.models import AccessRequest, Principal, ResourceGuard

ROLE_PLAYED = "role-played"
_DATA = {"data_action": True}


def sandbox_guard(world: SandboxWorld) -> ResourceGuard | None:
    """The Resource Guard in the sandbox's security group (the security admin's), if one was made."""
    group = world.security_group
    if group is None:
        return None
    return (ResourceGuard.objects.filter(resource_group_id__iexact=group.resource_id)
            .order_by("created_at", "name").first())


def partner_of(trainee: Principal) -> Principal | None:
    """The trainee's partner for paired labs, in a class (None in self-study)."""
    partner = Seat.partner_of_trainee(trainee.pk)
    return partner.trainee if partner is not None else None


def pending_requests(run: LabRun, ctx: LabContext | None = None) -> list[AccessRequest]:
    """The trainee's pending requests on their sandbox's guard: what the lab page offers to role-play (nothing
    to a paired trainee: their partner decides). ``ctx``, the run's context when the caller has it, saves
    reading the partner and the sandbox's resources again."""
    if not (run and run.active):
        return []
    if (ctx.paired if ctx is not None else partner_of(run.trainee) is not None):
        return []
    guard = sandbox_guard(ctx.world if ctx is not None else SandboxWorld(run.sandbox))
    if guard is None:
        return []
    return list(AccessRequest.objects.select_related("guard", "role")
                .filter(guard=guard, requester=run.trainee, state=AccessRequest.State.PENDING,
                        created_at__gt=clock.now() - mua.PENDING_REQUEST_LIFETIME)
                .order_by("created_at"))


def _sandbox_for(trainee: Principal, request: AccessRequest) -> Sandbox | None:
    """The trainee's active sandbox whose security group holds the request's guard."""
    group_id = scopes.normalize(request.guard.resource_group_id).lower()
    for sandbox in Sandbox.objects.filter(owner=trainee, status=Sandbox.Status.ACTIVE).exclude(subscription_id=""):
        group = SandboxWorld(sandbox).security_group
        if group is not None and scopes.normalize(group.resource_id).lower() == group_id:
            return sandbox
    return None


def _refusal(trainee: Principal, request: AccessRequest, sandbox: Sandbox | None, admin, partner) -> str:
    """Why this trainee may not role-play a decision on ``request`` ("" when they may)."""
    if not settings.STRONGROOM_LAB_MODE:
        return "Role-play of the security admin exists only in lab mode."
    if partner is not None:
        return (f"You are paired with {partner.display_name} ({partner.sign_in_name}): a person decides your access request, not a role-play. Your partner "
                "approves or rejects it in their own browser, from Approvals.")
    if sandbox is None:
        return (f"The Resource Guard '{request.guard.name}' is not your sandbox's: role-play decides only requests "
                "on the guard in your own sandbox's security group (rg-security-<code>).")
    if request.requester_id != trainee.pk:
        return "Role-play decides only your own access requests."
    if admin is None:
        return f"Sandbox {sandbox.code} has no built-in security admin: reset the sandbox to get a fresh one."
    return ""


def decide_as_security_admin(trainee: Principal, request: AccessRequest, *, approve: bool,
                             comment: str = "") -> AccessRequest:
    """Approve (or reject) ``request`` as the sandbox's security admin, role-played by ``trainee``.

    The role-play itself is logged (``LAB_SECURITY_ROLE_PLAY``, the trainee's); the decision is the MUA
    service's own entry, made by the security admin and naming the trainee as the one who played it."""
    request = AccessRequest.objects.select_related("guard", "requester", "role").get(pk=request.pk)
    sandbox = _sandbox_for(trainee, request)
    admin = SandboxWorld(sandbox).security_admin if sandbox else None
    partner = partner_of(trainee)
    verb = "approve" if approve else "reject"
    details = {"accessRequestId": str(request.pk), "resourceGuard": request.guard.name, "decision": verb,
               "sandbox": sandbox.code if sandbox else "", "securityAdmin": admin.display_name if admin else ""}
    with guarded(trainee, ops.LAB_SECURITY_ROLE_PLAY, scopes.ROOT, change=_DATA, details=details) as op:
        problem = _refusal(trainee, request, sandbox, admin, partner)
        if problem:
            raise ValidationError(problem)
        op.result_scope = request.guard.resource_id  # in the sandbox: its activity shows the role-play
    comment = (comment or "").strip() or (
        f"{'Approved' if approve else 'Rejected'} in self-study: {trainee.display_name} played the security admin.")
    decide = mua.approve_request if approve else mua.reject_request
    with context.acting(real_actor=trainee, correlation=context.correlation_id(),
                        played_as=f"{admin.display_name} ({ROLE_PLAYED})"):
        return decide(admin, request, comment=comment, role_played_by=trainee)
