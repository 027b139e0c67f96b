"""System checks of `vaults` (registered in `VaultsConfig.ready`, shown by runserver, `make run` and
`manage.py check`): where geo-redundant vaults keep their secondary-region copies."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

INSIDE_DATA_ROOT = "vaults.W001"
NOT_SEPARATE = "vaults.W002"


def secondary_root_check(app_configs=None, **kwargs) -> list:
    """A Warning when the secondary root is inside the data root (W001) or not configured at all (W002)."""
    from vaults.storage import SECONDARY_INSIDE, secondary_root_problem

    kind, problem = secondary_root_problem()
    if not kind:
        return []
    inside = kind == SECONDARY_INSIDE
    hint = ("Set STRONGROOM_SECONDARY_ROOT to a folder on another disk or host (a mount of it), outside "
            "STRONGROOM_DATA_ROOT." + ("" if settings.STRONGROOM_LAB_MODE else
                                      " In production mode replication refuses to copy into the primary's own tree."))
    return [checks.Warning(problem, hint=hint, id=INSIDE_DATA_ROOT if inside else NOT_SEPARATE)]
