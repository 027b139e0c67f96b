"""A lab is data in code: what it teaches, the product document it follows, and ordered steps, each with
instructions (Markdown, with the portal's exact labels), progressive hints, a check and a solve routine.

- A **check** reads real state (selectors, the activity log, the store, job results) and returns a
  `CheckResult`: passed, or what is still missing, in words. It never reads the labs app's own tables.
- A **solve** performs the step through the services as the trainee (`ctx.trainee`), so the same guards
  refuse it; jobs it starts go through `ctx.job_started(job)` (run inline in tests, by a worker otherwise).

Labs register themselves with `register`; `available()` leaves out a lab whose feature is missing.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import markdown as _markdown


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    message: str = ""

    @classmethod
    def ok(cls, message: str = "") -> "CheckResult":
        return cls(True, message)

    @classmethod
    def missing(cls, message: str) -> "CheckResult":
        return cls(False, message)


def first_free_name(base: str, taken, most: int = 50) -> str:
    """``base``, else ``base-2``, ``base-3``… the first name ``taken(name)`` says is free (a solve's name for what
    it creates, beside what the trainee may have made already)."""
    return next(n for n in (base, *(f"{base}-{i}" for i in range(2, most))) if not taken(n))


def create_free_vault(ctx, principal, base: str):
    """A solve's Backup vault, created by ``principal``: ``base`` (or the first free ``base-N``) in the
    sandbox's backup resource group, in the region of its source storage account."""
    from vaults import services as vault_services
    from vaults.services.names import name_taken

    group = ctx.world.backup_group
    name = first_free_name(base, lambda n: name_taken(group, n))
    return vault_services.create_vault(principal, name=name, region=ctx.world.source_account.region, resource_group=group)


_FIELD = re.compile(r"\{([a-z_]+)\}")


def fill_names(text: str, names) -> str:
    """Put a sandbox's names (labs.sandboxes.SandboxNames: ``{code}``, ``{backup_group}``,
    ``{source_account}``, ...) into ``text``; other braces are left as they are."""
    if names is None:
        return text

    def value(match):
        found = getattr(names, match.group(1), None)
        return str(found) if isinstance(found, (str, int)) else match.group(0)

    return _FIELD.sub(value, text)


@dataclass(frozen=True)
class PairNames:
    """What a paired lab's text may name for a trainee with a partner: their own sandbox's names (``{code}``,
    ``{security_group}``, ...), the partner (``{partner}``: display name, ``{partner_username}``) and the
    partner's sandbox (``{partner_code}``, ``{partner_security_group}``: any sandbox name after ``partner_``)."""

    own: object
    partner: str
    partner_username: str
    partner_sandbox: object

    def __getattr__(self, name):
        if name.startswith("_") or name in ("own", "partner_sandbox"):
            raise AttributeError(name)
        if name.startswith("partner_"):
            return getattr(self.partner_sandbox, name[len("partner_"):], None)
        return getattr(self.own, name, None)


def names_for(lab: "Lab", ctx):
    """The names a run's text is filled with: its sandbox's, and in a paired lab with a partner the pair's."""
    if lab.paired and ctx.partner is not None and ctx.partner_world is not None:
        return PairNames(ctx.names, ctx.partner.display_name, ctx.partner.sign_in_name, ctx.partner_world.names)
    return ctx.names


def _paired(names) -> bool:
    return isinstance(names, PairNames)


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    instructions: str  # Markdown
    check: Callable  # (LabContext) -> CheckResult
    solve: Callable  # (LabContext) -> None
    hints: tuple[str, ...] = ()
    # Said above the step when it needs lab time to pass (grant expiry, purge, retention).
    needs_time: str = ""
    # A paired lab's instructions and hints for a trainee with a partner (`PairNames`), when they differ
    # from the self-study ones (as many hints, in the same order).
    paired_instructions: str = ""
    paired_hints: tuple[str, ...] = ()

    def instructions_html(self, names=None) -> str:
        """The instructions as HTML, with the sandbox's names put in for ``{backup_group}``-style fields."""
        text = self.paired_instructions if self.paired_instructions and _paired(names) else self.instructions
        return _markdown.markdown(fill_names(text, names), extensions=["sane_lists"])

    def hints_for(self, names=None) -> tuple[str, ...]:
        hints = self.paired_hints if self.paired_hints and _paired(names) else self.hints
        return tuple(fill_names(hint, names) for hint in hints)


@dataclass(frozen=True)
class Document:
    title: str
    seed_file: str  # the file under ../shared/seeds/ it follows


@dataclass(frozen=True)
class Lab:
    slug: str
    title: str
    summary: str
    learn: tuple[str, ...]
    minutes: int
    document: Document
    steps: tuple[Step, ...]
    # Returns why the lab cannot be offered here (a missing feature or service), or "" when it can.
    unavailable: Callable[[], str] = field(default=lambda: "")
    # Seeds what the lab starts from, through the services as the trainee (after the sandbox exists).
    prepare: Callable | None = None
    order: int = 100
    # A role-play lab: in a class, trainees do it in pairs (each the other's security admin); alone, in
    # self-study with the sandbox's built-in security admin.
    paired: bool = False
    # The sandbox datasources the lab protects (SandboxNames attributes: "source_account", "volume"). A
    # datasource is protected in one vault only, so a class (whose labs share each trainee's sandbox) may
    # not hold two labs that protect the same one.
    protects: tuple[str, ...] = ()

    def step(self, key: str) -> Step:
        for step in self.steps:
            if step.key == key:
                return step
        raise KeyError(key)

    def index_of(self, key: str) -> int:
        return [s.key for s in self.steps].index(key)


_LABS: dict[str, Lab] = {}

# The built-in labs, one module each; each calls `register` when imported.
BUILTIN_MODULES = (
    "labs.catalogue.vault_basics",
    "labs.catalogue.elastic_san",
    "labs.catalogue.adls",
    "labs.catalogue.mua",
    "labs.catalogue.ransomware",
    "labs.catalogue.private_endpoints",
    "labs.catalogue.sdk_automation",
    "labs.catalogue.enhanced_policy",
)


def register(lab: Lab) -> Lab:
    if lab.slug in _LABS and _LABS[lab.slug] is not lab:
        raise ValueError(f"A lab named {lab.slug!r} is registered twice.")
    keys = [s.key for s in lab.steps]
    if len(set(keys)) != len(keys):
        raise ValueError(f"Lab {lab.slug!r} has two steps with the same key.")
    if any(s.paired_hints and len(s.paired_hints) != len(s.hints) for s in lab.steps):
        raise ValueError(f"Lab {lab.slug!r}: a step's paired hints must be as many as its hints.")
    _LABS[lab.slug] = lab
    return lab


def load_builtin_labs() -> None:
    for module in BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def get(slug: str) -> Lab | None:
    return _LABS.get(slug)


def all_labs() -> list[Lab]:
    return sorted(_LABS.values(), key=lambda lab: (lab.order, lab.title))


def available() -> list[Lab]:
    """The labs this installation can offer (a lab whose feature is missing is left out)."""
    return [lab for lab in all_labs() if not lab.unavailable()]
