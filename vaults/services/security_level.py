"""A vault's security level (decision 6): soft delete, immutability and whether a Resource Guard protects it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from security import mua
from vaults.models import BackupVault, ImmutabilityState, SecurityLevel, SoftDeleteState

MuaLinkCheck = Callable[[BackupVault], bool]
_mua_link_checks: list[MuaLinkCheck] = []


def register_mua_link_check(check: MuaLinkCheck) -> None:
    """Register an extra ``check(vault) -> bool`` that counts a vault as MUA-protected (tests use it
    to try each level); the vault's Resource Guard link itself is read from `security.mua`."""
    if check not in _mua_link_checks:
        _mua_link_checks.append(check)


def unregister_mua_link_check(check: MuaLinkCheck) -> None:
    if check in _mua_link_checks:
        _mua_link_checks.remove(check)


# The attribute `with_resource_guard_link` annotates a list's vaults with.
_LINKED = "resource_guard_linked"


def with_resource_guard_link(vaults):
    """``vaults`` (a queryset) annotated with whether a Resource Guard protects each: a list reads every
    vault's link with its own query instead of one query per vault (`is_resource_guard_linked`)."""
    return vaults.annotate(**{_LINKED: mua.is_linked_expression("resource_id")})


def is_resource_guard_linked(vault) -> bool:
    """`security.mua.is_linked` for the vault, read from the annotation when the vault came with one."""
    linked = getattr(vault, _LINKED, None)
    return mua.is_linked(vault.resource_id) if linked is None else linked


def is_mua_protected(vault) -> bool:
    return is_resource_guard_linked(vault) or any(check(vault) for check in list(_mua_link_checks))


@dataclass(frozen=True)
class SecurityAssessment:
    level: str  # SecurityLevel value
    mua_protected: bool
    raise_by: list = field(default_factory=list)  # what would raise it, as sentences

    @property
    def label(self) -> str:
        return SecurityLevel(self.level).label

    @property
    def status_class(self) -> str:
        return {
            SecurityLevel.EXCELLENT: "status-ok",
            SecurityLevel.GOOD: "status-ok",
            SecurityLevel.FAIR: "status-warn",
            SecurityLevel.POOR: "status-failed",
        }[self.level]


def security_level(vault) -> SecurityAssessment:
    """The vault's security level by decision 6, and what would raise it.

    Excellent = MUA and (soft delete AlwaysOn or immutability Locked); Good = soft delete On or
    AlwaysOn, or immutability Locked; Fair = immutability Unlocked with soft delete Off;
    Poor = soft delete Off and immutability Disabled.
    """
    linked = is_mua_protected(vault)
    sd, imm = vault.soft_delete_state, vault.immutability_state
    irreversible = sd == SoftDeleteState.ALWAYS_ON or imm == ImmutabilityState.LOCKED
    if linked and irreversible:
        return SecurityAssessment(SecurityLevel.EXCELLENT, linked, [])
    if sd in (SoftDeleteState.ON, SoftDeleteState.ALWAYS_ON) or imm == ImmutabilityState.LOCKED:
        steps = []
        if not linked:
            steps.append("protect the vault with a Resource Guard (Multi-user authorization)")
        if not irreversible:
            steps.append("make soft delete always-on or lock immutability")
        return SecurityAssessment(SecurityLevel.GOOD, linked, ["To reach Excellent: " + " and ".join(steps) + "."])
    if imm == ImmutabilityState.UNLOCKED:
        return SecurityAssessment(
            SecurityLevel.FAIR,
            linked,
            ["To reach Good: enable soft delete, or lock immutability (irreversible)."],
        )
    return SecurityAssessment(
        SecurityLevel.POOR,
        linked,
        [
            "To reach Good: enable soft delete.",
            "To reach Fair: enable immutability (lock it to reach Good).",
        ],
    )
