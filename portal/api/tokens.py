"""Bearer tokens for the API: signed, expiring JWTs naming a principal.

Signed with HS256 under a key derived from STRONGROOM_MASTER_KEY: only Strongroom reads its own tokens
(a client treats them as opaque), so no key pair has to be published or rotated on its own. A token
names its principal (``oid``) and, for a service principal, the client secret it was issued against
(``sid``), so disabling the principal or revoking the secret revokes its tokens at once.
"""

from __future__ import annotations

import datetime as dt
import uuid

import jwt
from django.conf import settings

from security.crypto import derive_key
from security.models import Principal

ALGORITHM = "HS256"
AUDIENCE = "https://management.azure.com/"
DEFAULT_LIFETIME = dt.timedelta(hours=1)

# What else must still hold for a token to be honoured (a secret not revoked, ...): functions
# (principal, claims) -> an error message, or "" when fine. Registered by the identity pieces.
_checks = []


class InvalidToken(Exception):
    """Why a presented token is refused, in words for the 401 answer."""


def register_check(fn) -> None:
    if fn not in _checks:
        _checks.append(fn)


def _key() -> bytes:
    return derive_key("strongroom api tokens v1")


def issuer() -> str:
    return f"https://strongroom/{tenant_id()}/v2.0"


def tenant_id() -> str:
    configured = getattr(settings, "STRONGROOM_TENANT_ID", "")
    if configured:
        return str(uuid.UUID(configured))
    # Stable per installation: derived from the master key, so it survives restarts.
    return str(uuid.UUID(bytes=derive_key("strongroom tenant id v1")[:16], version=4))


def issue(principal: Principal, *, lifetime: dt.timedelta = DEFAULT_LIFETIME, now: dt.datetime | None = None, **claims) -> tuple[str, int]:
    """A token for ``principal`` and its lifetime in seconds. Wall time, not the lab clock: a token's
    expiry is about the real world (the lab clock moving must not expire a running script's token)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    payload = {
        "aud": AUDIENCE,
        "iss": issuer(),
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()) - 60,
        "exp": int((now + lifetime).timestamp()),
        "oid": str(principal.id),
        "sub": str(principal.id),
        "tid": tenant_id(),
        "jti": str(uuid.uuid4()),
        **claims,
    }
    return jwt.encode(payload, _key(), algorithm=ALGORITHM), int(lifetime.total_seconds())


def principal_for(raw: str) -> Principal:
    """The enabled principal a token names, or InvalidToken saying why not."""
    try:
        claims = jwt.decode(
            raw,
            _key(),
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=issuer(),
            options={"require": ["exp", "iat", "oid", "aud", "iss"]},
            leeway=30,
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("The token is expired.") from None
    except jwt.InvalidSignatureError:
        raise InvalidToken("The access token has an invalid signature.") from None
    except jwt.InvalidTokenError as exc:
        raise InvalidToken(f"The access token is invalid: {exc}.") from None
    try:
        principal = Principal.objects.get(pk=uuid.UUID(str(claims["oid"])))
    except (ValueError, Principal.DoesNotExist):
        raise InvalidToken("The access token names a principal that does not exist.") from None
    if not principal.enabled:
        raise InvalidToken("The principal the access token names is disabled.")
    for check in _checks:
        problem = check(principal, claims)
        if problem:
            raise InvalidToken(problem)
    return principal
