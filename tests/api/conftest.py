"""Fixtures for the ARM API: a test client that presents a principal's bearer token, and Microsoft's
own SDK client pointed at the live test server."""

import pytest
from django.test import Client

from portal.api import API_VERSION


class ArmClient(Client):
    """``django.test.Client`` speaking as ``principal`` with a bearer token; every request carries
    ``api-version`` unless the path already names one (or ``api_version=None`` is passed)."""

    def __init__(self, principal, **defaults):
        from portal.api import tokens

        token, _ = tokens.issue(principal)
        super().__init__(HTTP_AUTHORIZATION=f"Bearer {token}", **defaults)
        self.principal = principal

    def _versioned(self, path, api_version):
        if api_version is None or "api-version=" in path:
            return path
        return f"{path}{'&' if '?' in path else '?'}api-version={api_version}"

    def get(self, path, *args, api_version=API_VERSION, **kwargs):
        return super().get(self._versioned(path, api_version), *args, **kwargs)

    def delete(self, path, *args, api_version=API_VERSION, **kwargs):
        return super().delete(self._versioned(path, api_version), *args, **kwargs)

    def put(self, path, data=None, *args, api_version=API_VERSION, **kwargs):
        kwargs.setdefault("content_type", "application/json")
        return super().put(self._versioned(path, api_version), data, *args, **kwargs)

    def patch(self, path, data=None, *args, api_version=API_VERSION, **kwargs):
        kwargs.setdefault("content_type", "application/json")
        return super().patch(self._versioned(path, api_version), data, *args, **kwargs)

    def post(self, path, data=None, *args, api_version=API_VERSION, **kwargs):
        kwargs.setdefault("content_type", "application/json")
        return super().post(self._versioned(path, api_version), data if data is not None else {}, *args, **kwargs)


@pytest.fixture
def arm():
    """``arm(principal)``: an ArmClient speaking as ``principal``."""
    return ArmClient


class _StaticBearer:
    """The SDK's authentication policy, replaced: the token of a principal, over plain http (the
    SDK's own policy refuses bearer tokens without TLS; the TLS path is tested end to end elsewhere)."""

    def __init__(self, token):
        self.token = token

    def on_request(self, request):
        request.http_request.headers["Authorization"] = f"Bearer {self.token}"

    def on_response(self, request, response):
        pass

    def on_exception(self, request):
        return False


@pytest.fixture
def sdk_client(live_server):
    """``sdk_client(principal, subscription_id)``: azure-mgmt-dataprotection's client against the live server."""
    from azure.core.pipeline.policies import SansIOHTTPPolicy
    from azure.mgmt.dataprotection import DataProtectionMgmtClient

    from portal.api import tokens

    class Bearer(_StaticBearer, SansIOHTTPPolicy):
        pass

    def make(principal, subscription_id, *, token=None, **claims):
        """``token``: one the principal got elsewhere (a service principal's, from the token endpoint);
        ``claims``: added to a token issued here (a service principal's ``sid``, its secret's id)."""
        token = token or tokens.issue(principal, **claims)[0]
        return DataProtectionMgmtClient(
            credential=object(),
            subscription_id=str(subscription_id),
            base_url=live_server.url,
            authentication_policy=Bearer(token),
            polling_interval=0.2,
            retry_total=0,
        )

    return make


def operation_status(arm_client, response):
    """Follow an LRO answer's ``Azure-AsyncOperation`` URL once and return its JSON."""
    url = response["Azure-AsyncOperation"]
    path = url.split("://", 1)[1].split("/", 1)[1]
    return arm_client.get("/" + path).json()


# --- the API over real TLS ---------------------------------------------------------------------------------


class TlsLiveServer:
    """A live server over HTTPS with a certificate from Strongroom's own CA (`portal.tls`): ``url``
    ("https://127.0.0.1:<port>"), ``ca`` (the CA file a client verifies against), ``stop()``."""

    def __init__(self, tls_dir):
        import ssl

        from django.test.testcases import LiveServerThread
        from django.test.utils import modify_settings

        from portal import tls

        files, _ = tls.ensure(tls_dir, ["127.0.0.1", "localhost"])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(files.certificate, files.key)

        class Thread(LiveServerThread):
            def _create_server(self, connections_override=None):
                server = super()._create_server(connections_override)
                # Handshake in the request's own thread (not in accept), so one stalled client holds up nobody.
                server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
                server.base_environ["HTTPS"] = "on"  # wsgi.url_scheme "https": request.scheme, absolute URLs
                return server

        self.ca = str(files.ca)
        from django.contrib.staticfiles.handlers import StaticFilesHandler

        self.thread = Thread("127.0.0.1", static_handler=StaticFilesHandler)
        self.thread.daemon = True
        self._settings = modify_settings(ALLOWED_HOSTS={"append": "127.0.0.1"})
        self._settings.enable()
        self.thread.start()
        self.thread.is_ready.wait()
        if self.thread.error:
            self.stop()
            raise self.thread.error
        self.url = f"https://127.0.0.1:{self.thread.port}"

    def stop(self):
        self.thread.terminate()
        self._settings.disable()


@pytest.fixture
def tls_live_server(transactional_db, tmp_path_factory):
    """The app served over TLS on 127.0.0.1 (a thread, as ``live_server``; the data is the test's own, so a
    transactional database): ``.url``, ``.ca``."""
    server = TlsLiveServer(tmp_path_factory.getbasetemp() / "tls")
    yield server
    server.stop()
