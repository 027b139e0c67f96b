"""Resource Guards and multi-user authorization (MUA): reference §1.8 and §3.3, decision 3, DESIGN §7.

A security admin owns a **Resource Guard** (Backup MUA Admin on it) and is its approver. A backup
admin with Reader on the guard **links** it to a vault (a `ResourceGuardProxy`). From then on the
**MUA guard** (registered with `security.guards` as "MUA", order 10) refuses the guard's protected
operations on that vault unless the caller is authorized on the guard's *request resource*
(``<guard id>/<requestType>/default``, action ``Microsoft.DataProtection/resourceGuards/<requestType>/
default/action``): Backup MUA Operator (``Microsoft.DataProtection/*/action``), Backup MUA Admin,
Contributor and Owner on the guard pass; Reader does not. A refused caller **requests access**: a
time-bound Backup MUA Operator grant on the guard, which one of the guard's approvers (never the
requester) approves or rejects with a comment. Without approvers a request is approved
automatically (a lesson kept from PIM). The grant is a RoleAssignment with ``ends_at``: it counts as
absent the moment it ends, and `close_expired_grants` (a periodic task) marks it Expired and logs it.

How services name what they do, so that this guard sees it:

* an operation whose action string *is* a critical operation is protected by the action alone:
  ``backupInstances/delete``, ``stopProtection/action``, ``suspendBackups/action``,
  ``restore/action``, ``backupResourceGuardProxies/delete``;
* an operation whose action is shared with harmless changes (a vault PATCH is ``backupVaults/write``;
  configuring protection and changing an instance's policy are both ``backupInstances/write``) names
  its critical operation in ``change["critical_operation"]`` (or a list in
  ``change["critical_operations"]``): ``backupVaults/write#reduceSoftDeleteSecurity``,
  ``#reduceImmutabilityState``, ``#modifyEncryptionSettings``, ``backupInstances/write``.

Every step is in the activity log naming both people: the request (requester), approval or rejection
(approver and requester), the use (the protected operation's own entry carries ``guards.MUA`` with the
grant, its requester and approver) and the expiry (requester and approver).

The modules: `rules` (what a guard protects, from the operations catalogue), `lookups` (reads),
`guard` (the MUA guard), `resource_guards` (guard services), `links` (vault links), `requests`
(access requests and decisions), `expiry`, `notifications`, and `workflow` (what requests share).
The action strings live in `security.operations`; the names below that alias them keep `mua.X`
working for the callers that read them here.
"""

from security.mua.expiry import close_expired_grants
from security.mua.links import link_resource_guard, remove_links_of, unlink_resource_guard
from security.mua.lookups import (
    active_grant,
    approvals_for,
    approvers_label,
    guard_by_id,
    guards_visible_to,
    is_linked,
    is_linked_expression,
    pending_request,
    proxy_for,
    remaining,
    requests_of,
)
from security.mua.notifications import register_notifier
from security.mua.requests import approve_request, cancel_request, reject_request, request_access
from security.mua.resource_guards import (
    create_resource_guard,
    delete_resource_guard,
    set_approvers,
    update_resource_guard,
)
from security.mua.rules import (
    ACCESS_DURATIONS_HOURS,
    AUTO_APPROVAL_WARNING,
    CRITICAL_OPERATIONS,
    DEFAULT_EXCLUSIONS,
    GUARD_HAS_VAULTS_MESSAGE,
    GUARD_NAME_RE,
    GUARD_NAME_RULE,
    JUSTIFICATION_MAX,
    LAB_ACCESS_DURATIONS_MINUTES,
    MANDATORY_OPERATIONS,
    PENDING_REQUEST_LIFETIME,
    CriticalOperation,
    access_durations,
    critical_operation,
    duration_label,
    protected_operations,
    request_resource_id,
)
from security.operations import (
    APPROVE_REQUEST,
    EXPIRE_ACCESS,
    PROXY_DELETE,
    REDUCE_IMMUTABILITY,
    REDUCE_SOFT_DELETE,
    REJECT_REQUEST,
    REQUEST_ACCESS,
    RESTORE,
)
from security.operations import INSTANCE_DELETE as DELETE_INSTANCE
from security.operations import guard_request_action as request_action

__all__ = [
    "ACCESS_DURATIONS_HOURS",
    "APPROVE_REQUEST",
    "AUTO_APPROVAL_WARNING",
    "CRITICAL_OPERATIONS",
    "DEFAULT_EXCLUSIONS",
    "DELETE_INSTANCE",
    "EXPIRE_ACCESS",
    "GUARD_HAS_VAULTS_MESSAGE",
    "GUARD_NAME_RE",
    "GUARD_NAME_RULE",
    "JUSTIFICATION_MAX",
    "LAB_ACCESS_DURATIONS_MINUTES",
    "MANDATORY_OPERATIONS",
    "PENDING_REQUEST_LIFETIME",
    "PROXY_DELETE",
    "REDUCE_IMMUTABILITY",
    "REDUCE_SOFT_DELETE",
    "REJECT_REQUEST",
    "REQUEST_ACCESS",
    "RESTORE",
    "CriticalOperation",
    "access_durations",
    "active_grant",
    "approvals_for",
    "approve_request",
    "approvers_label",
    "cancel_request",
    "close_expired_grants",
    "create_resource_guard",
    "critical_operation",
    "delete_resource_guard",
    "duration_label",
    "guard_by_id",
    "guards_visible_to",
    "is_linked",
    "is_linked_expression",
    "link_resource_guard",
    "pending_request",
    "protected_operations",
    "proxy_for",
    "register_notifier",
    "reject_request",
    "remaining",
    "remove_links_of",
    "request_access",
    "request_action",
    "request_resource_id",
    "requests_of",
    "set_approvers",
    "unlink_resource_guard",
    "update_resource_guard",
]
