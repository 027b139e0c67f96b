"""S3 clients shared per process (issue 22): one per endpoint, settings and credential identity, never one
vault's credentials in another's client; thread-safe; a forked child makes its own; a named AWS profile
from the shared config file (a temporary one: never the real home directory)."""

import io
import os
import threading

import pytest

from vaults.store import Store, StoreError
from vaults.store.s3 import S3Backend
from vaults.store.s3_clients import credential_identity, forget_clients, shared_client

from tests._s3 import aws_files, client_key_id

from .conftest import make_bucket

KEY_A = {"access_key_id": "vault-a-key", "secret_access_key": "vault-a-secret"}
KEY_B = {"access_key_id": "vault-b-key", "secret_access_key": "vault-b-secret"}


@pytest.fixture
def bucket(s3_endpoint):
    return make_bucket(s3_endpoint)


def test_backends_of_one_identity_share_a_client_and_other_credentials_never_do(s3_endpoint, bucket):
    a1 = S3Backend(bucket, "a", endpoint_url=s3_endpoint, **KEY_A)
    a2 = S3Backend(bucket, "a2", endpoint_url=s3_endpoint, **KEY_A)
    b = S3Backend(bucket, "b", endpoint_url=s3_endpoint, **KEY_B)
    assert a1.client is a2.client
    assert b.client is not a1.client
    assert client_key_id(a1.client) == "vault-a-key" and client_key_id(b.client) == "vault-b-key"
    # the same key id with another secret is another identity (a rotated or a wrong secret is never reused)
    other_secret = S3Backend(bucket, "a", endpoint_url=s3_endpoint, access_key_id="vault-a-key",
                             secret_access_key="rotated")
    assert other_secret.client is not a1.client
    # another endpoint, region, addressing or client settings: another client
    assert S3Backend(bucket, "a", endpoint_url=s3_endpoint, region="eu-west-1", **KEY_A).client is not a1.client
    assert S3Backend(bucket, "a", endpoint_url=s3_endpoint, addressing="virtual", check_bucket=False,
                     **KEY_A).client is not a1.client
    assert S3Backend(bucket, "a", endpoint_url=s3_endpoint, max_attempts=1, **KEY_A).client is not a1.client
    # closing a backend (a store's close) leaves the shared client working for the others
    a1.put("x", b"one")
    a1.close()
    assert a2.client is S3Backend(bucket, "a", endpoint_url=s3_endpoint, **KEY_A).client
    assert S3Backend(bucket, "a", endpoint_url=s3_endpoint, **KEY_A).get("x") == b"one"


def test_the_cache_key_holds_no_secret(s3_endpoint, bucket):
    from vaults.store import s3_clients

    S3Backend(bucket, "k", endpoint_url=s3_endpoint, **KEY_B)
    keys = repr(list(s3_clients._clients.by_key))
    assert "vault-b-secret" not in keys and "vault-b-key" not in keys
    assert credential_identity("id", "secret", None, None) != credential_identity("id", "secret2", None, None)


def test_many_threads_opening_at_once_get_one_client(s3_endpoint, bucket, key, tmp_path):
    Store.init(S3Backend(bucket, "threads", endpoint_url=s3_endpoint, **KEY_A), key).close()
    forget_clients()
    clients, errors = [], []
    start = threading.Barrier(6)

    def open_one():
        try:
            start.wait()
            backend = S3Backend(bucket, "threads", endpoint_url=s3_endpoint, **KEY_A)
            with Store.open(backend, key, cache_dir=str(tmp_path / f"c{threading.get_ident()}")) as store:
                assert store.list_snapshots() == []
            clients.append(backend.client)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({id(c) for c in clients}) == 1


def test_a_forked_child_makes_its_own_client(s3_endpoint, bucket):
    parent = S3Backend(bucket, "fork", endpoint_url=s3_endpoint, **KEY_A)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer whether it got the parent's client object, then leave at once
        try:
            child = S3Backend(bucket, "fork", endpoint_url=s3_endpoint, check_bucket=False, **KEY_A)
            os.write(write, b"shared" if child.client is parent.client else b"own")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 16)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"own"
    assert S3Backend(bucket, "fork", endpoint_url=s3_endpoint, **KEY_A).client is parent.client


def test_credentials_from_a_named_profile(s3_endpoint, bucket, key, tmp_path, monkeypatch):
    aws_files(tmp_path, monkeypatch, {"backup-a": ("profile-a-key", "profile-a-secret"),
                                       "backup-b": ("profile-b-key", "profile-b-secret")})
    a = S3Backend(bucket, "prof", endpoint_url=s3_endpoint, profile="backup-a")
    b = S3Backend(bucket, "prof", endpoint_url=s3_endpoint, profile="backup-b")
    assert (client_key_id(a.client), client_key_id(b.client)) == ("profile-a-key", "profile-b-key")
    with Store.init(a, key, cache_dir=str(tmp_path / "cache")) as store:
        snap = store.backup_stream(io.BytesIO(b"from a profile"), name="p")
    with Store.open(b, key, cache_dir=str(tmp_path / "cache-b")) as store:  # profile b reads it back
        assert store.verify(snap.id).ok
    # AWS_PROFILE names the profile for boto3's chain when the location names none
    monkeypatch.setenv("AWS_PROFILE", "backup-b")
    assert client_key_id(S3Backend(bucket, "prof", endpoint_url=s3_endpoint).client) == "profile-b-key"
    # an edited profile file gets a new client with the new key
    aws_files(tmp_path, monkeypatch, {"backup-a": ("profile-a-key-rotated", "profile-a-secret-rotated")})
    assert client_key_id(S3Backend(bucket, "prof", endpoint_url=s3_endpoint, profile="backup-a").client) == \
        "profile-a-key-rotated"


def test_a_named_profile_wins_over_the_strongroom_variables(s3_endpoint, bucket, tmp_path, monkeypatch):
    aws_files(tmp_path, monkeypatch, {"backup-a": ("profile-a-key", "profile-a-secret")})
    monkeypatch.setenv("STRONGROOM_S3_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("STRONGROOM_S3_SECRET_ACCESS_KEY", "env-secret")
    assert client_key_id(S3Backend(bucket, "prof", endpoint_url=s3_endpoint, profile="backup-a").client) == "profile-a-key"
    assert client_key_id(S3Backend(bucket, "prof", endpoint_url=s3_endpoint).client) == "env-key"
    assert client_key_id(S3Backend(bucket, "prof", endpoint_url=s3_endpoint, **KEY_B).client) == "vault-b-key"


def test_a_missing_profile_is_a_clear_error(s3_endpoint, bucket, tmp_path, monkeypatch):
    aws_files(tmp_path, monkeypatch, {"backup-a": ("k", "s")})
    with pytest.raises(StoreError) as info:
        S3Backend(bucket, "prof", endpoint_url=s3_endpoint, profile="no-such-profile")
    assert "'no-such-profile'" in str(info.value) and str(tmp_path / "aws-config") in str(info.value)


def test_shared_client_is_keyed_by_settings(s3_endpoint):
    args = dict(endpoint_url=s3_endpoint, region="us-east-1", addressing="path", **KEY_A)
    one = shared_client(settings=(5, 16, 10, 60), **args)
    assert shared_client(settings=(5, 16, 10, 60), **args) is one
    assert shared_client(settings=(1, 16, 5, 15), **args) is not one
