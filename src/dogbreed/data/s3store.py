"""A dataset under s3://bucket/prefix: parallel, resumable uploads through the AwsSession gateway.

One S3 client is shared by a pool of threads (botocore clients are thread-safe), and each
small file is one PutObject: for thousands of ~20 KB photos the round trip, not bandwidth,
is the cost, so concurrency is what makes it fast. Files above the multipart threshold go
through boto3's managed transfer. Every object carries its sha256 in metadata, which is how
a later run tells a complete upload from one that an interruption left behind.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import socket
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from dogbreed.aws.client_errors import code_of
from dogbreed.data.manifest import MANIFEST_NAME, parse_manifest
from dogbreed.data.plan import PlannedFile
from dogbreed.data.stores import Advance, run_parallel, stale_paths, vouched
from dogbreed.errors import DogbreedError
from dogbreed.regular_files import FileRefusedError, size_problem
from dogbreed.s3_uri import split_s3_uri

if TYPE_CHECKING:
    from dogbreed.aws.session import AwsSession

SHA256_KEY = "sha256"  # x-amz-meta-sha256 on every object we store
MULTIPART_THRESHOLD = 8 * 2**20  # boto3's default: below it a single PUT is cheapest
DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys
LOCK_NAME = ".dogbreed-ingest.lock"  # beside manifest.json while an ingest writes


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """'s3://bucket/a/b/' -> ('bucket', 'a/b'): a store's prefix has no slashes at its ends."""
    bucket, prefix = split_s3_uri(uri, what="prefix")
    return bucket, prefix.strip("/")


def explain(exc: Exception, uri: str) -> DogbreedError:
    """One line for the AWS failures people actually hit."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return DogbreedError(f"{uri}: no AWS credentials; set sagemaker.profile or the AWS_* environment variables")
    if isinstance(exc, EndpointConnectionError):
        return DogbreedError(f"{uri}: cannot reach S3 ({exc}); check the network, region or AWS_ENDPOINT_URL")
    if isinstance(exc, ClientError):
        code = code_of(exc)
        if code == "NoSuchBucket":
            return no_such_bucket(uri)
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
            return DogbreedError(f"{uri}: access denied ({code}); check the credentials and the bucket policy")
        return DogbreedError(f"{uri}: S3 said {code or 'error'}: {exc}")
    return DogbreedError(f"{uri}: {type(exc).__name__}: {exc}")


def no_such_bucket(uri: str) -> DogbreedError:
    bucket = parse_s3_uri(uri)[0]
    return DogbreedError(f"{uri}: bucket {bucket!r} does not exist; create it or set --dest / sagemaker.bucket")


def _send_body_at_once(request: Any, **_: Any) -> None:
    if "Expect" in request.headers:
        del request.headers["Expect"]


class S3Store:
    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket, self.prefix, self.client = bucket, prefix, client
        self.uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self._listed: set[str] | None = None  # what missing() found, for stale()
        # botocore sends every S3 PUT with a body as `Expect: 100-continue` and waits for the
        # server's go-ahead before the bytes: a second round trip per photo, which doubled the
        # time of a sequential upload through bench_ingest_s3.py's 20 ms proxy. It pays off for
        # a large body the server may refuse; this client's PutObjects are photos and small
        # JSON (bigger files go through upload_file's parts, which keep it).
        client.meta.events.register("before-sign.s3.PutObject", _send_body_at_once)

    @classmethod
    def from_uri(cls, uri: str, aws: AwsSession) -> S3Store:
        bucket, prefix = parse_s3_uri(uri)
        return cls(bucket, prefix, aws.client("s3"))

    def key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def _call(self, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise explain(exc, self.uri) from exc

    def check_access(self) -> None:
        """Credentials and bucket, asked once before ingest spends minutes checking photos.

        One ListObjectsV2 of at most one key under the prefix: the listing ingest sends later
        anyway, so it needs no permission ingest did not need already (HeadBucket would want
        s3:ListBucket on the whole bucket, which a policy limited to the prefix refuses)."""
        base = f"{self.prefix}/" if self.prefix else ""
        try:
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=base, MaxKeys=1)
        except Exception as exc:  # noqa: BLE001 - botocore's connection errors share no useful base
            raise explain(exc, self.uri) from exc

    def read_manifest(self) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(MANIFEST_NAME))["Body"].read()
        except ClientError as exc:
            if code_of(exc) in ("NoSuchKey", "404"):
                return None
            raise explain(exc, self.uri) from exc
        except Exception as exc:  # noqa: BLE001 - botocore's connection errors share no useful base
            raise explain(exc, self.uri) from exc
        try:
            return parse_manifest(body, f"{self.uri}/{MANIFEST_NAME}")
        except ValueError:
            return None  # unreadable or tampered: trust nothing, check every object

    def listing(self) -> dict[str, int]:
        """{relative path: size} of every object under the prefix."""
        from botocore.exceptions import BotoCoreError, ClientError

        base = f"{self.prefix}/" if self.prefix else ""
        found: dict[str, int] = {}
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
                for obj in page.get("Contents", ()):
                    found[obj["Key"][len(base) :]] = obj["Size"]
        except (BotoCoreError, ClientError) as exc:
            raise explain(exc, self.uri) from exc
        return found

    def missing(self, files: Sequence[PlannedFile], previous: Mapping[str, Any] | None, workers: int) -> list[PlannedFile]:
        known, there = vouched(previous), self.listing()
        self._listed = set(there)
        to_head, out = [], []
        for planned in files:
            if there.get(planned.path) != planned.size:
                out.append(planned)
            elif known.get(planned.path) != (planned.size, planned.sha256):
                to_head.append(planned)  # present, but no manifest vouches for its content

        def same(planned: PlannedFile) -> bool:
            head = self._call("head_object", Bucket=self.bucket, Key=self.key(planned.path))
            return head.get("Metadata", {}).get(SHA256_KEY) == planned.sha256

        equal = run_parallel(same, to_head, workers, "checking")
        out += [planned for planned, ok in zip(to_head, equal) if not ok]
        return sorted(out, key=lambda p: p.path)

    def read_object(self, path: str, max_bytes: int, limit_name: str = "the limit") -> bytes:
        """One object's bytes, refused (FileRefusedError) past max_bytes: from the response's
        ContentLength before the body is read, else as the chunks stream in (a stray archive
        in a prefix of photos never sits in memory whole)."""
        where = f"{self.uri}/{path}"
        response = self._call("get_object", Bucket=self.bucket, Key=self.key(path))
        body = response["Body"]
        chunks, total = [], 0
        try:
            problem = size_problem(int(response.get("ContentLength") or 0), max_bytes, limit_name)
            if problem:
                raise FileRefusedError(where, problem)
            for chunk in body.iter_chunks(1 << 20):
                total += len(chunk)
                if total > max_bytes:
                    raise FileRefusedError(where, f"too large: more than {limit_name} {max_bytes:,} bytes; refused")
                chunks.append(chunk)
        finally:
            body.close()
        return b"".join(chunks)

    def discard_manifest(self) -> None:
        self._call("delete_object", Bucket=self.bucket, Key=self.key(MANIFEST_NAME))

    def put(self, files: Sequence[PlannedFile], workers: int, advance: Advance) -> None:
        def upload(planned: PlannedFile) -> None:
            extra = {
                "Metadata": {SHA256_KEY: planned.sha256},
                "ContentType": mimetypes.guess_type(planned.path)[0] or "application/octet-stream",
            }
            key = self.key(planned.path)
            if planned.size < MULTIPART_THRESHOLD:
                # In hand, the bytes are checked against the sha256 the object will carry: a
                # photo rewritten since ingest checked it must not be stored under the old hash.
                body = planned.source.read_bytes()
                if hashlib.sha256(body).hexdigest() != planned.sha256:
                    raise DogbreedError(
                        f"{planned.source}: changed since ingest checked it; run ingest again once nothing writes to it"
                    )
                self._call("put_object", Bucket=self.bucket, Key=key, Body=body, **extra)
            else:
                self._call("upload_file", Filename=str(planned.source), Bucket=self.bucket, Key=key, ExtraArgs=extra)
            advance(1)

        run_parallel(upload, files, workers, "uploading")

    def stale(self, keep: set[str]) -> list[str]:
        # missing()'s listing is still right for this: every object put since is in `keep`.
        # A re-ingest that changes nothing is mostly that listing; it is not repeated.
        return stale_paths(self.listing() if self._listed is None else self._listed, keep)

    def remove(self, paths: Sequence[str]) -> None:
        for start in range(0, len(paths), DELETE_BATCH):
            batch = paths[start : start + DELETE_BATCH]
            answer = self._call(
                "delete_objects", Bucket=self.bucket, Delete={"Objects": [{"Key": self.key(p)} for p in batch], "Quiet": True}
            )
            errors = answer.get("Errors") or []
            if errors:
                first = errors[0]
                raise DogbreedError(
                    f"{self.uri}: could not delete {len(errors)} stale object(s); first: {first.get('Key')}: "
                    f"{first.get('Code')} {first.get('Message', '')}".rstrip()
                )

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One ingest at a time per prefix, as LocalStore's flock gives per folder.

        S3 has no locks, but it has conditional writes: PutObject with If-None-Match: * creates
        the lock object only if it does not exist, atomically. The object names its holder, and
        is deleted on the way out (Ctrl-C and errors included); a killed ingest leaves it, and
        the refusal says which object to delete once no ingest runs.
        """
        key = self.key(LOCK_NAME)
        etag = self._acquire(key)
        try:
            yield
        finally:
            if etag:
                self._release(key, etag)

    def _acquire(self, key: str) -> str:
        """The lock object's ETag; "" where the store has no conditional writes (no lock then)."""
        from botocore.exceptions import ClientError

        # The token makes each lock's ETag (an MD5 of the body) its own, for _release's If-Match.
        holder = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "token": uuid.uuid4().hex,
        }
        try:
            return self.client.put_object(
                Bucket=self.bucket, Key=key, Body=json.dumps(holder).encode(), IfNoneMatch="*", ContentType="application/json"
            )["ETag"]
        except ClientError as exc:
            code = code_of(exc)
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):  # 412: held; 409: a racing create
                raise DogbreedError(
                    f"another ingest is writing to {self.uri} ({self._holder(key)}); wait for it to finish, "
                    f"or, if none is running, delete {self.uri}/{LOCK_NAME} and run again"
                ) from None
            if code == "NotImplemented":  # an S3-compatible store without conditional writes
                return ""
            raise explain(exc, self.uri) from exc
        except Exception as exc:  # noqa: BLE001 - connection errors share no useful base
            raise explain(exc, self.uri) from exc

    def _release(self, key: str, etag: str) -> None:
        """Delete the lock if it is still ours: if someone deleted it and another ingest took
        it, its ETag differs and S3 refuses (412). A store without conditional deletes gets a
        plain delete. Best effort: a lock left behind is named by the next ingest's refusal."""
        from botocore.exceptions import ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=key, IfMatch=etag)
        except ClientError as exc:
            if code_of(exc) in ("NotImplemented", "InvalidArgument", "InvalidRequest"):
                try:
                    self.client.delete_object(Bucket=self.bucket, Key=key)
                except Exception:  # noqa: BLE001 - see above
                    pass
        except Exception:  # noqa: BLE001 - see above
            pass

    def _holder(self, key: str) -> str:
        """Who holds the lock, from its body; best effort, the refusal stands without it."""
        try:
            holder = json.loads(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
            return f"since {holder['started']}, pid {holder['pid']} on {holder['host']}"
        except Exception:  # noqa: BLE001 - released meanwhile, or not written by us
            return "lock held"

    def write_manifest(self, data: bytes) -> None:
        self._call("put_object", Bucket=self.bucket, Key=self.key(MANIFEST_NAME), Body=data, ContentType="application/json")
