"""S3-compatible object storage backend (boto3), with Object Lock retention.

Configured per store by a location URL plus credentials that are never part of it::

    s3://bucket/some/prefix?endpoint=https://s3.example:9000&region=eu-west-1&addressing=path

Credentials come, first found first, from the constructor's access key, its named ``profile`` (in the shared
config and credentials files: ``AWS_CONFIG_FILE`` / ``AWS_SHARED_CREDENTIALS_FILE``, default ``~/.aws/``), the
``STRONGROOM_S3_ACCESS_KEY_ID`` / ``STRONGROOM_S3_SECRET_ACCESS_KEY`` / ``STRONGROOM_S3_SESSION_TOKEN``
environment variables, or boto3's usual chain (``AWS_*`` variables, ``AWS_PROFILE``, instance roles). The store config
object holds no backend settings at all, so nothing secret is ever written to the store.

Atomicity: an S3 object becomes visible only when its ``PutObject`` or
``CompleteMultipartUpload`` succeeds; an upload in progress (or abandoned by a crash) is not
returned by GET or LIST. Packs are therefore uploaded straight under their final key (small
ones in one PUT, big ones in parts of ``part_size``) and no partial pack is ever visible;
a temp key + copy would double the traffic for no gain. Abandoned multipart uploads are
invisible but billed: :meth:`S3Backend.cleanup_incomplete` (called by garbage collection)
aborts those older than its safety window.

Clients: one boto3 client per process for each (endpoint, region, addressing, client settings, credential
identity), made on first use and kept (:func:`shared_client`): a new client costs ~100 ms of loading botocore's
service model, more than the calls a store open makes. A backend never shares a client with one of other
credentials: the identity is a digest of the access key (or, for boto3's chain, of the environment and shared
config files it reads), so two vaults with different keys or profiles get two clients. boto3 clients are
thread-safe and sessions are not: each client is made from its own session, which is then dropped. A forked
child (a Celery prefork worker) forgets its parent's clients and makes its own.

Retries: botocore's ``standard`` retry mode (throttling, 5xx, connection errors, with
exponential backoff) on every call, and around that our own jittered backoff on each
multipart step, on whole-object reads and on resumed streaming reads.

Retention maps onto Object Lock: the engine's ``governance`` / ``compliance`` modes are S3's
``GOVERNANCE`` / ``COMPLIANCE`` (a vault's immutability Unlocked -> governance, Locked ->
compliance; see :func:`vaults.store.retention_mode_for`). A bucket without Object Lock
cannot hold retained objects: :meth:`supports_retention` is False and ``set_retention``
raises :class:`ImmutabilityUnsupported`.

Deletes on versioned buckets: a plain ``DELETE`` of a key "succeeds" by adding a delete marker
that hides the object while its retained version lives on. This backend never does that: it
checks the current version's retention (refusing with :class:`RetentionError`) and deletes it
by version id, then the next older version if one becomes current, so a delete removes the
bytes or is refused, and never leaves a marker.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import random
import time
import urllib.parse
from typing import Optional

import botocore.exceptions as bex

from .backend import (GOVERNANCE, Backend, ObjectInfo, Retention, _aware, check_name, fault_before_delete,
                      fault_wrap, refuse_weaker_retention, retention_until)
from .errors import ImmutabilityUnsupported, NotFound, RetentionError, StorageFull, StoreError
from .filerange import FileRange
from .s3_clients import shared_client

PART_SIZE = 8 << 20  # multipart part size (S3's minimum is 5 MiB for all parts but the last)
MIN_PART = 5 << 20

_THROTTLE_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeoutException",
                   "InternalError", "ServiceUnavailable", "RequestLimitExceeded", "TooManyRequests",
                   "OperationAborted", "500", "502", "503", "504"}
_NET_ERRORS = (bex.HTTPClientError, bex.ConnectionError, bex.IncompleteReadError, bex.ResponseStreamingError,
               ConnectionError, TimeoutError)
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchVersion"}


def _code(e: bex.ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


# what S3-compatible services answer when their disks or the bucket's quota are full
_FULL_CODES = {"XMinioStorageFull", "InsufficientStorage", "QuotaExceeded", "XMinioAdminBucketQuotaExceeded"}


def _storage_full(fn):
    """Turn a "storage full" answer of a write into :class:`StorageFull`."""
    @functools.wraps(fn)
    def wrapper(self, name, *args, **kw):
        try:
            return fn(self, name, *args, **kw)
        except bex.ClientError as e:
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if _code(e) in _FULL_CODES or status == 507:
                raise StorageFull(self.location, f"the storage of the store at {self.location} is full "
                                                 f"({_code(e) or status})") from e
            raise
    return wrapper


def _retryable(e: BaseException) -> bool:
    if isinstance(e, _NET_ERRORS):
        return True
    if isinstance(e, bex.ClientError):
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return _code(e) in _THROTTLE_CODES or status in (500, 502, 503, 504)
    return False


class S3Backend(Backend):
    """A bucket (and key prefix) on an S3-compatible service. Thread-safe."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: Optional[str] = None,
                 region: Optional[str] = None, access_key_id: Optional[str] = None,
                 secret_access_key: Optional[str] = None, session_token: Optional[str] = None,
                 addressing: Optional[str] = None, part_size: int = PART_SIZE, max_attempts: int = 5,
                 retries: int = 4, backoff: float = 0.25, max_pool_connections: int = 16,
                 connect_timeout: float = 10, read_timeout: float = 60, check_bucket: bool = True,
                 profile: Optional[str] = None):
        if not bucket:
            raise StoreError("an S3 store location needs a bucket name")
        if part_size < MIN_PART:
            raise ValueError(f"part_size must be at least {MIN_PART} bytes (S3's minimum)")
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = prefix + "/" if prefix else ""
        self.endpoint_url = endpoint_url or os.environ.get("STRONGROOM_S3_ENDPOINT") or None
        self.region = region or os.environ.get("STRONGROOM_S3_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.part_size = int(part_size)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.location = f"s3://{bucket}/{prefix}" + (f"?endpoint={self.endpoint_url}" if self.endpoint_url else "")
        if addressing is None:
            addressing = "path" if self.endpoint_url else "auto"
        if not (access_key_id or secret_access_key or profile):  # a named profile wins over the variables
            access_key_id = os.environ.get("STRONGROOM_S3_ACCESS_KEY_ID")
            secret_access_key = os.environ.get("STRONGROOM_S3_SECRET_ACCESS_KEY")
            session_token = session_token or os.environ.get("STRONGROOM_S3_SESSION_TOKEN")
        # the client keeps the credentials; this object keeps none of them as attributes
        self.client = shared_client(
            endpoint_url=self.endpoint_url, region=self.region, addressing=addressing,
            settings=(int(max_attempts), int(max_pool_connections), connect_timeout, read_timeout),
            access_key_id=access_key_id or None, secret_access_key=secret_access_key or None,
            session_token=session_token or None, profile=profile or None)
        self._versioned: Optional[bool] = None
        self._lock_enabled: Optional[bool] = None
        if check_bucket:
            try:
                self._call(self.client.head_bucket, Bucket=bucket)
            except bex.ClientError as e:
                if _code(e) in ("404", "NoSuchBucket", "NotFound"):
                    raise NotFound(f"bucket {bucket!r} does not exist at {self.endpoint_url or 'AWS'}") from None
                raise StoreError(f"cannot use bucket {bucket!r}: {e}") from None

    @classmethod
    def from_url(cls, url: str, **options) -> "S3Backend":
        u = urllib.parse.urlsplit(url)
        if u.scheme != "s3":
            raise StoreError(f"not an s3:// location: {url!r}")
        if "@" in u.netloc or u.password or u.username:
            raise StoreError("credentials must not be part of the store location; pass them through the "
                             "STRONGROOM_S3_ACCESS_KEY_ID / STRONGROOM_S3_SECRET_ACCESS_KEY environment variables")
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        known = {"endpoint": "endpoint_url", "region": "region", "addressing": "addressing"}
        kw = {}
        for k, v in q.items():
            if k == "part_size_mib":
                kw["part_size"] = int(float(v[-1]) * (1 << 20))
            elif k in known:
                kw[known[k]] = v[-1]
            else:
                raise StoreError(f"unknown option {k!r} in store location (known: endpoint, region, addressing, part_size_mib)")
        kw.update(options)
        return cls(u.netloc, u.path.lstrip("/"), **kw)

    def __repr__(self):
        return f"S3Backend({self.location!r})"

    # -- helpers -------------------------------------------------------------------
    def _key(self, name: str) -> str:
        return self.prefix + check_name(name)

    def _sleep(self, attempt: int) -> None:
        time.sleep(random.uniform(0, min(8.0, self.backoff * (2 ** attempt))))

    def _call(self, fn, **kw):
        """One API call with our own backoff around botocore's retries."""
        attempt = 0
        while True:
            try:
                return fn(**kw)
            except BaseException as e:
                if attempt >= self.retries or not _retryable(e):
                    raise
            self._sleep(attempt)
            attempt += 1

    def _head(self, name: str) -> dict:
        try:
            return self._call(self.client.head_object, Bucket=self.bucket, Key=self._key(name))
        except bex.ClientError as e:
            if _code(e) in _NOT_FOUND:
                raise NotFound(f"object {name!r} not found in {self.location}") from None
            raise

    def _not_found(self, e, name):
        if isinstance(e, bex.ClientError) and _code(e) in _NOT_FOUND:
            raise NotFound(f"object {name!r} not found in {self.location}") from None
        raise e

    @staticmethod
    def _retention_of(head: dict) -> Optional[Retention]:
        mode = head.get("ObjectLockMode")
        until = head.get("ObjectLockRetainUntilDate")
        if not mode or not until:
            return None
        if isinstance(until, str):
            until = dt.datetime.fromisoformat(until.replace("Z", "+00:00"))
        if until.tzinfo is None:
            until = until.replace(tzinfo=dt.timezone.utc)
        return Retention(until.astimezone(dt.timezone.utc), mode.lower())

    def _check_overwrite(self, name: str) -> None:
        try:
            head = self._head(name)
        except NotFound:
            return
        r = self._retention_of(head)
        if r is not None and r.active():
            raise RetentionError(name, r.until, r.mode,
                                 f"cannot overwrite {name!r}: under {r.mode} retention until {r.until.isoformat()}")

    @property
    def versioned(self) -> bool:
        if self._versioned is None:
            r = self._call(self.client.get_bucket_versioning, Bucket=self.bucket)
            self._versioned = r.get("Status") in ("Enabled", "Suspended")
        return self._versioned

    # -- writes --------------------------------------------------------------------------
    @_storage_full
    def put(self, name, data):
        self._check_overwrite(name)
        body = b"".join(fault_wrap([data]))
        self._call(self.client.put_object, Bucket=self.bucket, Key=self._key(name), Body=body)

    @_storage_full
    def put_chunks(self, name, chunks):
        """Single PUT when the object fits in one part, else a multipart upload: the object
        appears only when the upload completes (never partially)."""
        self._check_overwrite(name)
        key = self._key(name)
        pending, plen = [], 0  # views of the caller's buffers: one copy per part, when it is sent
        upload_id = None
        parts = []
        total = 0
        try:
            for c in fault_wrap(chunks):
                mv = memoryview(c).cast("B")
                total += len(mv)
                while len(mv):
                    take = min(len(mv), self.part_size - plen)
                    pending.append(mv[:take])
                    plen += take
                    mv = mv[take:]
                    if plen == self.part_size:
                        if upload_id is None:
                            upload_id = self._call(self.client.create_multipart_upload, Bucket=self.bucket,
                                                   Key=key)["UploadId"]
                        body = b"".join(pending)
                        pending, plen = [], 0
                        parts.append(self._upload_part(key, upload_id, len(parts) + 1, body))
                        del body
            body = b"".join(pending)
            pending = []
            if upload_id is None:
                self._call(self.client.put_object, Bucket=self.bucket, Key=key, Body=body)
                return
            if body:
                parts.append(self._upload_part(key, upload_id, len(parts) + 1, body))
            del body
            self._complete(key, upload_id, parts, total)
            upload_id = None
        finally:
            if upload_id is not None:
                self._abort_upload(key, upload_id)

    @_storage_full
    def put_file(self, name, path):
        """Upload a local file (a staged pack) part by part straight from the file: no part is
        ever read into memory as a whole (botocore streams a file body)."""
        self._check_overwrite(name)
        key = self._key(name)
        upload_id = None
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            try:
                if size <= self.part_size:
                    self._send(self.client.put_object, FileRange(f.fileno(), 0, size), Bucket=self.bucket, Key=key)
                    return
                upload_id = self._call(self.client.create_multipart_upload, Bucket=self.bucket, Key=key)["UploadId"]
                parts = [self._upload_part(key, upload_id, i + 1,
                                           FileRange(f.fileno(), off, min(off + self.part_size, size)))
                         for i, off in enumerate(range(0, size, self.part_size))]
                self._complete(key, upload_id, parts, size)
                upload_id = None
            finally:
                if upload_id is not None:
                    self._abort_upload(key, upload_id)

    def _abort_upload(self, key, upload_id):
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except Exception:
            pass  # garbage collection aborts it later

    def _send(self, fn, body, **kw):
        """``fn(Body=body, **kw)`` with retries; a stream body is rewound before each attempt."""
        def attempt(**kw):
            if hasattr(body, "seek"):
                body.seek(0)
            return fn(**kw)
        return self._call(attempt, Body=body, **kw)

    def _upload_part(self, key, upload_id, number, body) -> dict:
        r = self._send(self.client.upload_part, body, Bucket=self.bucket, Key=key, UploadId=upload_id,
                       PartNumber=number)
        part = {"PartNumber": number, "ETag": r["ETag"]}
        for k in ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumSHA1", "ChecksumSHA256", "ChecksumCRC64NVME"):
            if r.get(k):
                part[k] = r[k]
        return part

    def _complete(self, key, upload_id, parts, total):
        attempt = 0
        while True:
            try:
                self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                      MultipartUpload={"Parts": parts})
                return
            except BaseException as e:
                if attempt > 0 and isinstance(e, bex.ClientError) and _code(e) == "NoSuchUpload":
                    # an earlier attempt completed it but its answer was lost
                    try:
                        head = self.client.head_object(Bucket=self.bucket, Key=key)
                        if head["ContentLength"] == total:
                            return
                    except bex.ClientError:
                        pass
                    raise
                if attempt >= self.retries or not _retryable(e):
                    raise
            self._sleep(attempt)
            attempt += 1

    # -- reads ----------------------------------------------------------------------------
    def get(self, name):
        key = self._key(name)

        def read():
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        try:
            return self._call(read)
        except bex.ClientError as e:
            self._not_found(e, name)

    def get_range(self, name, offset, length):
        if length <= 0:
            return b""
        key = self._key(name)

        def read():
            return self.client.get_object(Bucket=self.bucket, Key=key,
                                          Range=f"bytes={offset}-{offset + length - 1}")["Body"].read()
        try:
            return self._call(read)
        except bex.ClientError as e:
            if _code(e) == "InvalidRange":
                self.size(name)  # NotFound if it does not exist
                return b""
            self._not_found(e, name)

    def open(self, name):
        return _S3Reader(self, name)

    def size(self, name):
        return int(self._head(name)["ContentLength"])

    def _pages(self, prefix):
        kw = {"Bucket": self.bucket, "Prefix": self.prefix + prefix}
        token = None
        while True:
            if token:
                kw["ContinuationToken"] = token
            page = self._call(self.client.list_objects_v2, **kw)
            yield page.get("Contents", [])
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    def _names(self, prefix):
        for page in self._pages(prefix):
            for o in page:
                name = o["Key"][len(self.prefix):]
                try:
                    check_name(name)
                except ValueError:
                    continue  # not ours (a "folder" marker, say)
                yield name, o

    def list(self, prefix=""):
        return iter(sorted(n for n, _ in self._names(prefix)))

    def list_info(self, prefix=""):
        out = [ObjectInfo(n, int(o["Size"]), o["LastModified"].astimezone(dt.timezone.utc))
               for n, o in self._names(prefix)]
        out.sort(key=lambda i: i.name)
        return iter(out)

    # -- delete and retention ------------------------------------------------------------
    def delete(self, name, *, bypass_governance=False):
        head = self._head(name)
        key = self._key(name)
        extra = {"BypassGovernanceRetention": True} if bypass_governance else {}
        fault_before_delete()
        while True:
            r = self._retention_of(head)
            if r is not None and r.active() and not (r.mode == GOVERNANCE and bypass_governance):
                raise RetentionError(name, r.until, r.mode,
                                     f"cannot delete {name!r}: under {r.mode} retention until {r.until.isoformat()}")
            vid = head.get("VersionId")
            if not self.versioned or not vid:
                self._call(self.client.delete_object, Bucket=self.bucket, Key=key, **extra)
                return
            # by version id: never a delete marker that would only hide the object
            try:
                self._call(self.client.delete_object, Bucket=self.bucket, Key=key, VersionId=vid, **extra)
            except bex.ClientError as e:
                if _code(e) in ("AccessDenied", "InvalidRequest"):
                    raise RetentionError(name, r.until if r else None, r.mode if r else None,
                                         f"the object store refused to delete {name!r} (version {vid}): "
                                         f"{e.response['Error'].get('Message', _code(e))}") from None
                raise
            try:  # an older version (an overwritten lock or config) becomes current: delete it too
                head = self._head(name)
            except NotFound:
                return

    def supports_retention(self) -> bool:
        if self._lock_enabled is None:
            try:
                r = self._call(self.client.get_object_lock_configuration, Bucket=self.bucket)
                self._lock_enabled = r.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            except bex.ClientError as e:
                if _code(e) in ("ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound",
                                "NoSuchObjectLockConfiguration", "InvalidRequest"):
                    self._lock_enabled = False
                else:
                    raise
        return self._lock_enabled

    def unsupported_message(self) -> str:
        return (f"bucket {self.bucket!r} does not have S3 Object Lock enabled, so it cannot hold immutable "
                f"recovery points (deletes could not be refused). Object Lock can only be turned on when a "
                f"bucket is created: create a bucket with Object Lock enabled and put the store there.")

    def set_retention(self, name, until, mode=GOVERNANCE, *, bypass_governance=False):
        until = retention_until(until, mode)
        if not self.supports_retention():
            raise ImmutabilityUnsupported(self.unsupported_message())
        head = self._head(name)
        cur = self._retention_of(head)
        refuse_weaker_retention(name, cur, until, mode, bypass_governance)
        kw = {"Bucket": self.bucket, "Key": self._key(name),
              "Retention": {"Mode": mode.upper(), "RetainUntilDate": until}}
        if head.get("VersionId") and head["VersionId"] != "null":
            kw["VersionId"] = head["VersionId"]
        if bypass_governance:
            kw["BypassGovernanceRetention"] = True
        try:
            self._call(self.client.put_object_retention, **kw)
        except bex.ClientError as e:
            if _code(e) in ("AccessDenied", "InvalidRequest"):
                raise RetentionError(name, until, mode, f"the object store refused retention on {name!r}: "
                                     f"{e.response['Error'].get('Message', _code(e))}") from None
            raise

    def get_retention(self, name):
        return self._retention_of(self._head(name))

    def cleanup_incomplete(self, older_than):
        cutoff = _aware(older_than)
        n = nbytes = 0
        kw = {"Bucket": self.bucket, "Prefix": self.prefix}
        while True:
            page = self._call(self.client.list_multipart_uploads, **kw)
            for u in page.get("Uploads", []):
                if u["Initiated"].astimezone(dt.timezone.utc) >= cutoff:
                    continue
                try:
                    parts = self._call(self.client.list_parts, Bucket=self.bucket, Key=u["Key"],
                                       UploadId=u["UploadId"]).get("Parts", [])
                    # an upload that received a part recently is still in progress
                    if any(p["LastModified"].astimezone(dt.timezone.utc) >= cutoff for p in parts):
                        continue
                    nbytes += sum(int(p["Size"]) for p in parts)
                    self._call(self.client.abort_multipart_upload, Bucket=self.bucket, Key=u["Key"],
                               UploadId=u["UploadId"])
                    n += 1
                except bex.ClientError as e:
                    if _code(e) != "NoSuchUpload":
                        raise
            if not page.get("IsTruncated"):
                return n, nbytes
            kw["KeyMarker"] = page.get("NextKeyMarker")
            kw["UploadIdMarker"] = page.get("NextUploadIdMarker")

    def close(self):
        """Nothing to release: the client is this process's shared one (`s3_clients.forget_clients` drops them)."""


class _S3Reader:
    """A readable stream of one object; a broken connection resumes with a ranged GET."""

    def __init__(self, backend: S3Backend, name: str):
        self.b = backend
        self.name = name
        self.key = backend._key(name)
        self.pos = 0
        self.body = None
        self.size = None
        self._open()

    def _open(self):
        kw = {"Bucket": self.b.bucket, "Key": self.key}
        if self.pos:
            kw["Range"] = f"bytes={self.pos}-"
        try:
            r = self.b._call(self.b.client.get_object, **kw)
        except bex.ClientError as e:
            if _code(e) == "InvalidRange":
                self.body = None
                return
            self.b._not_found(e, self.name)
        if self.size is None:
            self.size = int(r["ContentLength"])
        self.body = r["Body"]

    def read(self, n: int = -1) -> bytes:
        out = []
        want = n
        attempt = 0
        while want != 0 and (self.size is None or self.pos < self.size):
            if self.body is None:
                self._open()
                if self.body is None:
                    break
            try:
                b = self.body.read(want if want > 0 else None)
            except _NET_ERRORS:
                if attempt >= self.b.retries:
                    raise
                self.b._sleep(attempt)
                attempt += 1
                self.body = None
                continue
            if not b:
                break
            out.append(b)
            self.pos += len(b)
            if want > 0:
                want -= len(b)
        return b"".join(out)

    def close(self):
        if self.body is not None:
            self.body.close()
            self.body = None

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

