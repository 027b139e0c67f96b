"""Who is really acting, and which request an entry belongs to.

The acting principal is passed to every service explicitly. These context variables only carry
what the activity log shows beside it: the real user behind a lab persona, and a correlation id
that ties the entries of one request or job together.
"""

import contextlib
import contextvars
import uuid

_real_actor = contextvars.ContextVar("strongroom_real_actor", default=None)
_correlation_id = contextvars.ContextVar("strongroom_correlation_id", default=None)
_played_as = contextvars.ContextVar("strongroom_played_as", default="")


def real_actor():
    return _real_actor.get()


def played_as() -> str:
    """The lab persona's title (e.g. "Backup admin") while a trainer role-plays, else ""."""
    return _played_as.get()


def correlation_id() -> uuid.UUID:
    value = _correlation_id.get()
    return value if value is not None else uuid.uuid4()


@contextlib.contextmanager
def acting(real_actor=None, correlation=None, played_as: str = ""):
    actor_token = _real_actor.set(real_actor)
    corr_token = _correlation_id.set(correlation or uuid.uuid4())
    played_token = _played_as.set(played_as)
    try:
        yield
    finally:
        _real_actor.reset(actor_token)
        _correlation_id.reset(corr_token)
        _played_as.reset(played_token)
