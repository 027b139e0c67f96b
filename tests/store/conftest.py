import logging
import os
import sys
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

KEY = bytes(range(32))
S3_ENV = {"STRONGROOM_S3_ACCESS_KEY_ID": "strongroom-test", "STRONGROOM_S3_SECRET_ACCESS_KEY": "strongroom-test-secret",
          "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def key():
    return KEY


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 API server (moto's server mode) on loopback, for the whole session."""
    from moto.server import ThreadedMotoServer
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV)  # subprocesses (the CLI) inherit the credentials
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def make_bucket(endpoint, *, object_lock=True, versioned=None):
    import boto3
    c = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id=S3_ENV["STRONGROOM_S3_ACCESS_KEY_ID"],
                     aws_secret_access_key=S3_ENV["STRONGROOM_S3_SECRET_ACCESS_KEY"])
    name = f"sr-{uuid.uuid4().hex[:20]}"
    c.create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
    if versioned and not object_lock:
        c.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


class Backends:
    """Makes fresh backends of one kind ("local" or "s3") and their CLI location strings."""

    def __init__(self, kind, tmp_path, request):
        self.kind = kind
        self.tmp = tmp_path
        self.request = request
        self.endpoint = request.getfixturevalue("s3_endpoint") if kind == "s3" else None
        self.buckets = {}

    def location(self, name="store", *, object_lock=True):
        if self.kind == "local":
            return str(self.tmp / name)
        if object_lock not in self.buckets:
            self.buckets[object_lock] = make_bucket(self.endpoint, object_lock=object_lock)
        return f"s3://{self.buckets[object_lock]}/{name}?endpoint={self.endpoint}&part_size_mib=5"

    def make(self, name="store", *, object_lock=True):
        from vaults.store import open_backend
        return open_backend(self.location(name, object_lock=object_lock), create=True)


@pytest.fixture(params=["local", "s3"])
def backends(request, tmp_path):
    return Backends(request.param, tmp_path, request)


def _store_factory(backends, tmp_path):
    from vaults.store import Store
    opened = []

    def make(name="store", workers=2, small=False, **options):
        kw = dict(chunk_min=16 << 10, chunk_avg=64 << 10, chunk_max=256 << 10, pack_size=512 << 10) if small else {}
        options.setdefault("lock_wait", 30)
        s = Store.init(backends.make(name), KEY, cache_dir=str(tmp_path / f"{name}-cache"), workers=workers,
                       **kw, **options)
        opened.append(s)
        return s

    return make, opened


def _close_all(stores):
    for s in stores:
        try:
            s.close()
        except Exception:  # a test may have closed or broken it already
            pass


@pytest.fixture
def make_store(backends, tmp_path):
    """Stores on both backends (every test using it runs once per backend)."""
    make, opened = _store_factory(backends, tmp_path)
    yield make
    _close_all(opened)


@pytest.fixture
def make_local_store(tmp_path, request):
    """Local stores only, for tests that damage the files on disk directly."""
    make, opened = _store_factory(Backends("local", tmp_path, request), tmp_path)
    yield make
    _close_all(opened)
