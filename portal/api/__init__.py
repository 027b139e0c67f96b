"""The management API in the shape of Azure Resource Manager's ``Microsoft.DataProtection``.

This package is the plumbing every resource route stands on: the one NinjaAPI (``arm``), bearer
tokens (``tokens``, ``auth``), ARM's error envelope (``errors``), resource envelopes and paging
(``envelope``), lookups with ARM's 403/404 rules (``lookups``) and long-running operations (``lro``).
Resource routes live with their features (``vaults.api``, ``protection.api``) and call the same
services as the pages; ``wiring`` names them by string, as the root urls do.
"""

API_VERSION = "2026-06-01"
SUPPORTED_API_VERSIONS = (API_VERSION,)
# Microsoft.Authorization's routes (role assignments and definitions, `portal.api.authorization`; PIM's
# role assignment schedule requests, `portal.api.pim`) speak that provider's own api-versions, as ARM does:
# a path is versioned by its last provider.
AUTHORIZATION_API_VERSIONS = ("2022-04-01", "2020-10-01", "2022-04-01-preview")
