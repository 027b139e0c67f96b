"""The API accepts one kind of credential: ``Authorization: Bearer <token>`` (never the portal's
session cookie, so a page's signed-in browser cannot be made to call the API across sites)."""

from ninja.security import HttpBearer

from portal.api import tokens
from portal.api.errors import ArmError


def unauthenticated(message: str) -> ArmError:
    error = ArmError(401, "InvalidAuthenticationToken", message)
    error.headers["WWW-Authenticate"] = 'Bearer authorization_uri="/", error="invalid_token"'
    return error


class BearerToken(HttpBearer):
    def __call__(self, request):
        header = request.headers.get(self.header, "")
        if not header:
            raise ArmError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ArmError(
                401, "AuthenticationFailedInvalidHeader", "Authentication failed. The 'Authorization' header is provided in an invalid format."
            )
        return self.authenticate(request, token.strip())

    def authenticate(self, request, token):
        try:
            return tokens.principal_for(token)
        except tokens.InvalidToken as exc:
            raise unauthenticated(str(exc)) from None
