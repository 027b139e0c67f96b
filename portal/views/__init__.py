"""Views of the shell, one module per part of it: `shell` (sign-in, home, search), `tenancy`
(subscriptions, resource groups), `iam`, `activity` (activity log, alerts, notifications) and `lab`
(personas, the lab clock, the worker check).

Views are thin: they read through `visible`/`get_visible_or_404` and change state only by calling
services; a GuardDenied from a service becomes the explained 403 page (GuardDeniedMiddleware).
"""

from portal.views.shell import SignInView  # noqa: F401  (the root URLconf's sign-in page)
