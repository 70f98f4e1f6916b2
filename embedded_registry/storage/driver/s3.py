"""The s3 driver, key for key compatible with CNCF Distribution's ``s3-aws`` driver.

Keys: ``<rootdirectory>/docker/registry/v2/...`` with the leading slash trimmed (Distribution's
``s3Path``). Content is one object per key; "directories" are common prefixes.

Writers are S3 multipart uploads, as Distribution keeps them: the state of an unfinished upload
is the multipart upload itself (found again by ``ListMultipartUploads`` on the key, its parts by
``ListParts``), never only in a process, so any replica resumes it. Bytes are gathered into parts
of ``chunksize``; what is left when a writer closes (the end of one PATCH) is sent as a smaller
part. S3 refuses a part under 5 MiB anywhere but last, so when a writer continues an upload whose
last part is small, it completes the upload, starts a new one and copies the completed object in
as its first part (``UploadPartCopy``), or reads it back into the buffer when it is under 5 MiB.

Up to ``PARTS_IN_FLIGHT`` parts of a writer go up at once; one killed mid-way may leave a later
part without an earlier one, so a resumed writer keeps only the unbroken run from part 1.

The small reads of hot paths (a link, a HEAD, a one-level listing) and blob streams take a fast
path: a presigned URL (reused for half its validity) fetched with plain aiohttp, which costs a
third of botocore's CPU per request; any answer but the expected one goes botocore's way.

Needs the ``s3`` extra (aiobotocore): ``pip install 'regtui[s3]'``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import email.utils
import os
import ssl
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)
from multidict import CIMultiDict

from embedded_registry.config import MIN_S3_CHUNK_SIZE, S3Config
from embedded_registry.storage.driver.base import (
    FileInfo,
    FileWriter,
    InvalidOffsetError,
    PathNotFoundError,
    PreconditionFailedError,
    StorageDriver,
    StorageDriverError,
)
from embedded_registry.storage.driver.capabilities import Uploads

MIN_CHUNK_SIZE = MIN_S3_CHUNK_SIZE
MAX_COPY_PART = 5 << 30
LIST_MAX_KEYS = 1000
PRESIGN_EXPIRY = 20 * 60
"""Seconds a redirect URL stays valid (Distribution's 20 minutes)."""
READ_CHUNK = 1 << 20
PARTS_IN_FLIGHT = 4
"""Part uploads one writer keeps in flight (the engine stores them in parallel)."""

_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}
_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY")
"""With a proxy in the environment, every request goes botocore's way (which honours it)."""
FAST_EXPIRY = 300
SIGNED_CACHE_SIZE = 4096
_OPERATION_NAMES = {
    "get_object": "GetObject",
    "head_object": "HeadObject",
    "list_objects_v2": "ListObjectsV2",
}
SMALL_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=5)
"""Seconds the URLs of the fast path stay valid (they never leave the process)."""


_Names = list[str]
_Keys = list[dict[str, str]]


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and _code(exc) in _NOT_FOUND_CODES


def _under(candidate: str, key: str) -> bool:
    """Whether ``candidate`` is ``key`` itself or lies under it as a directory."""
    return not key or candidate == key or candidate.startswith(key.rstrip("/") + "/")


def _timestamp(value: Any) -> float:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return 0.0


class S3Driver(StorageDriver):
    name = "s3"

    def __init__(self, settings: S3Config) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self._root = settings.rootdirectory.strip("/")
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._http: aiohttp.ClientSession | None = None
        self.requests: collections.Counter[str] = collections.Counter()
        """Requests sent to the engine by operation (botocore's and the fast path's alike):
        the deterministic measure of ``bench/bench_s3.py --requests``."""
        self._signed: dict[tuple[Any, ...], tuple[str, float]] = {}
        """Presigned URLs of the fast path, reused for half their validity (signing costs
        more than the request; S3 accepts a presigned URL as often as it is sent)."""
        """The fast path of the small reads on hot paths (a link, a HEAD, a listing of one
        level): a presigned URL fetched with plain aiohttp, without botocore's per-request
        machinery (a third of the CPU). Anything but the expected answer goes the ordinary
        way, which retries and turns errors into exceptions."""

    # -- set-up -------------------------------------------------------------------------------
    async def open(self) -> S3Driver:
        s = self.settings
        config = AioConfig(
            signature_version="s3v4",
            s3={"addressing_style": "path" if s.forcepathstyle else "auto"},
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=64,
        )
        kwargs: dict[str, Any] = {
            "region_name": s.region,
            "endpoint_url": s.endpoint_url,
            "use_ssl": s.secure,
            "verify": not s.skipverify,
            "config": config,
        }
        if s.accesskey and s.secretkey:
            kwargs["aws_access_key_id"] = s.accesskey
            kwargs["aws_secret_access_key"] = s.secretkey
        session = get_session()
        self._client = await self._stack.enter_async_context(session.create_client("s3", **kwargs))
        self._client.meta.events.register("before-call.s3", self._count)
        tls: ssl.SSLContext | bool = False
        if s.secure and not s.skipverify:
            from botocore.httpsession import get_cert_path

            tls = ssl.create_default_context(
                cafile=os.environ.get("AWS_CA_BUNDLE") or get_cert_path(True)
            )
        if not any(os.environ.get(v) for v in PROXY_VARIABLES):  # botocore's way, then
            self._http = await self._stack.enter_async_context(
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=64, ssl=tls),
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60),
                    auto_decompress=False,
                )
            )
        return self

    def _count(self, model: Any, **_: Any) -> None:
        self.requests[str(model.name)] += 1

    async def _presigned(
        self,
        signed: tuple[Any, ...],
        operation: str,
        params: dict[str, Any],
        expiry: int = FAST_EXPIRY,
    ) -> str:
        """A presigned URL for ``operation``, reused while it has half its validity left."""
        now = time.monotonic()
        cached = self._signed.get(signed)
        if cached is not None and now - cached[1] < expiry / 2:
            return cached[0]
        url: str = await self.client.generate_presigned_url(
            operation, Params=params, ExpiresIn=expiry
        )
        self._signed[signed] = (url, now)
        while len(self._signed) > SIGNED_CACHE_SIZE:
            del self._signed[next(iter(self._signed))]
        return url

    async def _fast(
        self, method: str, operation: str, params: dict[str, Any], limit: int | None = None
    ) -> tuple[int, bytes, CIMultiDict[str]] | None:
        """``(status, body, headers)`` of a presigned request, or None when the fast path is
        unavailable or failed (the caller then asks botocore)."""
        if self._http is None:
            return None
        signed = (operation, *sorted(params.items()))
        try:
            url = await self._presigned(signed, operation, params)
            headers = {"Range": f"bytes=0-{max(limit - 1, 0)}"} if limit is not None else {}
            self.requests[_OPERATION_NAMES.get(operation, operation)] += 1
            async with self._http.request(
                method, url, headers=headers, timeout=SMALL_TIMEOUT
            ) as response:
                status, answer = response.status, CIMultiDict(response.headers)
                body = b""
                if method != "HEAD":
                    if limit is None:
                        body = await response.content.read()
                    else:  # one byte more than the limit tells a larger object
                        pieces: list[bytes] = []
                        left = limit + 1
                        while left > 0 and (piece := await response.content.read(left)):
                            pieces.append(piece)
                            left -= len(piece)
                        body = b"".join(pieces)
        except (aiohttp.ClientError, TimeoutError, BotoCoreError):
            self._signed.pop(signed, None)
            return None
        if status not in (200, 206, 404, 416):
            self._signed.pop(signed, None)  # expired credentials, say: sign afresh next time
        return status, body, answer

    async def close(self) -> None:
        await self._stack.aclose()

    @property
    def client(self) -> Any:
        if self._client is None:
            raise StorageDriverError("the s3 driver is not open")
        return self._client

    async def check(self) -> None:
        """One line for what keeps the registry from using the bucket."""
        where = self.settings.endpoint_url or f"AWS region {self.settings.region}"
        try:
            await self.client.head_bucket(Bucket=self.bucket)
        except NoCredentialsError:
            raise StorageDriverError(
                "no S3 credentials: set storage.s3.accesskey/secretkey or the AWS credential chain"
            ) from None
        except EndpointConnectionError:
            raise StorageDriverError(f"cannot reach the S3 endpoint {where}") from None
        except ClientError as exc:
            code = _code(exc)
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise StorageDriverError(
                    f"S3 bucket {self.bucket!r} does not exist at {where}"
                ) from None
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise StorageDriverError(
                    f"access to S3 bucket {self.bucket!r} denied at {where}: check the "
                    "credentials (storage.s3.accesskey/secretkey)"
                ) from None
            raise StorageDriverError(f"S3 bucket {self.bucket!r} at {where}: {code}") from None
        except (BotoCoreError, OSError) as exc:
            raise StorageDriverError(f"cannot reach the S3 endpoint {where}: {exc}") from None

    # -- keys ---------------------------------------------------------------------------------
    def key(self, path: str) -> str:
        """Distribution's ``s3Path``: the root directory and the path, no leading slash."""
        return (self._root + path).lstrip("/") if self._root else path.lstrip("/")

    def path_of(self, key: str) -> str:
        return "/" + (key[len(self._root) + 1 :] if self._root else key)

    def _put_args(self) -> dict[str, Any]:
        s = self.settings
        args: dict[str, Any] = {}
        if s.storageclass and s.storageclass.upper() != "NONE":
            args["StorageClass"] = s.storageclass
        if s.encrypt:
            args["ServerSideEncryption"] = "aws:kms" if s.keyid else "AES256"
            if s.keyid:
                args["SSEKMSKeyId"] = s.keyid
        return args

    # -- content ------------------------------------------------------------------------------
    async def get_content(self, path: str, *, limit: int | None = None) -> bytes:
        fast = await self._fast(
            "GET", "get_object", {"Bucket": self.bucket, "Key": self.key(path)}, limit
        )
        if fast is not None:
            status, body, _headers = fast
            if status in (200, 206) and (limit is None or len(body) <= limit):
                return body
            if status == 404:
                raise PathNotFoundError(path)
            if status == 416:
                return b""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(path)}
        if limit is not None:
            args["Range"] = f"bytes=0-{max(limit - 1, 0)}"
        try:
            response = await self.client.get_object(**args)
        except ClientError as exc:
            if _is_not_found(exc):
                raise PathNotFoundError(path) from None
            if _code(exc) == "InvalidRange":
                return b""
            raise
        async with response["Body"] as body:
            data: bytes = await body.read()
        return data

    async def put_content(self, path: str, data: bytes) -> None:
        await self.client.put_object(
            Bucket=self.bucket,
            Key=self.key(path),
            Body=data,
            ContentType="application/octet-stream",
            **self._put_args(),
        )

    async def get_versioned(self, path: str) -> tuple[bytes, str]:
        try:
            response = await self.client.get_object(Bucket=self.bucket, Key=self.key(path))
        except ClientError as exc:
            if _is_not_found(exc):
                raise PathNotFoundError(path) from None
            raise
        async with response["Body"] as body:
            data: bytes = await body.read()
        return data, str(response["ETag"])

    async def put_conditional(self, path: str, data: bytes, *, version: str | None) -> str:
        condition = {"IfNoneMatch": "*"} if version is None else {"IfMatch": version}
        try:
            response = await self.client.put_object(
                Bucket=self.bucket, Key=self.key(path), Body=data, **condition
            )
        except ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise PreconditionFailedError(f"{path} changed meanwhile") from None
            if _is_not_found(exc):
                raise PreconditionFailedError(f"{path} is gone") from None
            raise
        return str(response["ETag"])

    async def reader(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(path)}
        if length == 0:
            return
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            args["Range"] = f"bytes={offset}-{end}"
        if self._http is not None:
            # The fast path: the object streamed by plain aiohttp (botocore's body wrapper
            # costs CPU per block); an unexpected answer goes botocore's way below.
            params = {"Bucket": self.bucket, "Key": args["Key"]}
            signed = ("get_object", *sorted(params.items()))
            expected = 206 if "Range" in args else 200
            try:
                url = await self._presigned(signed, "get_object", params)
                headers = {"Range": args["Range"]} if "Range" in args else {}
                self.requests["GetObject"] += 1
                streamed = await self._http.get(url, headers=headers)
            except (aiohttp.ClientError, TimeoutError, BotoCoreError):
                streamed = None
            if streamed is not None:
                try:
                    if streamed.status == expected:
                        async for block in streamed.content.iter_chunked(READ_CHUNK):
                            yield block
                        return
                    self._signed.pop(signed, None)
                finally:
                    streamed.release()
        try:
            response = await self.client.get_object(**args)
        except ClientError as exc:
            if _is_not_found(exc):
                raise PathNotFoundError(path) from None
            if _code(exc) == "InvalidRange":
                info = await self.stat(path)
                if offset == info.size:
                    return
                raise InvalidOffsetError(f"offset {offset} past the end of {path}") from None
            raise
        async with response["Body"] as body:
            while True:
                block = await body.read(READ_CHUNK)
                if not block:
                    break
                yield block

    async def stat(self, path: str) -> FileInfo:
        key = self.key(path)
        fast = await self._fast("HEAD", "head_object", {"Bucket": self.bucket, "Key": key})
        if fast is not None and fast[0] == 200 and "Content-Length" in fast[2]:
            modified = fast[2].get("Last-Modified")
            mtime = email.utils.parsedate_to_datetime(modified).timestamp() if modified else 0.0
            return FileInfo(path, int(fast[2]["Content-Length"]), mtime, False)
        try:
            head = await self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if not _is_not_found(exc):
                raise
        else:
            return FileInfo(
                path, int(head["ContentLength"]), _timestamp(head.get("LastModified")), False
            )
        listed = await self.client.list_objects_v2(
            Bucket=self.bucket, Prefix=key.rstrip("/") + "/", MaxKeys=1
        )
        if listed.get("KeyCount", 0) or listed.get("Contents"):
            return FileInfo(path, 0, 0.0, True)
        raise PathNotFoundError(path)

    async def version(self, path: str) -> str | None:
        """The object's ETag and Last-Modified (one HEAD; None when there is no object)."""
        fast = await self._fast(
            "HEAD", "head_object", {"Bucket": self.bucket, "Key": self.key(path)}
        )
        if fast is not None:
            status, _body, headers = fast
            if status == 200 and headers.get("ETag"):
                return f"{headers.get('ETag')} {headers.get('Last-Modified')}"
            if status == 404:
                return None
        try:
            head = await self.client.head_object(Bucket=self.bucket, Key=self.key(path))
        except ClientError as exc:
            if _is_not_found(exc):
                return None
            raise
        if not head.get("ETag"):  # an engine without ETags: never the same twice
            return f"unversioned {uuid.uuid4()}"
        http_headers = head.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return f"{head.get('ETag')} {http_headers.get('last-modified')}"

    async def list(self, path: str) -> list[str]:
        prefix = self.key(path).rstrip("/")
        prefix = prefix + "/" if prefix else ""
        children = await self._fast_list(prefix)
        if children is not None:
            if not children and path.strip("/"):
                raise PathNotFoundError(path)
            return sorted(children)
        children = []  # the ordinary way
        paginator = self.client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/", PaginationConfig={"PageSize": 1000}
        ):
            children += [self.path_of(item["Key"]) for item in page.get("Contents", [])]
            children += [
                self.path_of(item["Prefix"].rstrip("/")) for item in page.get("CommonPrefixes", [])
            ]
        if not children and path.strip("/"):
            raise PathNotFoundError(path)
        return sorted(children)

    async def _fast_list(self, prefix: str) -> _Names | None:
        """The children under ``prefix`` (one level, every page) by the fast path, or None."""
        children: _Names = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "Delimiter": "/"}
            if token:
                params["ContinuationToken"] = token
            fast = await self._fast("GET", "list_objects_v2", params)
            if fast is None or fast[0] != 200:
                return None
            try:
                root = ET.fromstring(fast[1])
            except ET.ParseError:
                return None
            keys = root.iterfind(f"{_S3_NS}Contents/{_S3_NS}Key")
            children += [self.path_of(e.text) for e in keys if e.text]
            children += [
                self.path_of(text.rstrip("/"))
                for text in (
                    e.text for e in root.iterfind(f"{_S3_NS}CommonPrefixes/{_S3_NS}Prefix")
                )
                if text
            ]
            token = root.findtext(f"{_S3_NS}NextContinuationToken")
            if root.findtext(f"{_S3_NS}IsTruncated") != "true" or not token:
                return children

    async def list_files(self, path: str) -> AsyncIterator[FileInfo]:
        """Every object under ``path`` (recursive, one paginated listing, key order)."""
        prefix = self.key(path).rstrip("/")
        prefix = prefix + "/" if prefix else ""
        paginator = self.client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(
            Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": LIST_MAX_KEYS}
        ):
            for item in page.get("Contents", []):
                yield FileInfo(
                    self.path_of(item["Key"]),
                    int(item["Size"]),
                    _timestamp(item.get("LastModified")),
                    False,
                )

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        seen_dirs: set[str] = set()
        base = path.rstrip("/")
        async for info in self.list_files(path):
            parts = info.path[len(base) + 1 :].split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                directory = base + "/" + "/".join(parts[:depth])
                if directory not in seen_dirs:
                    seen_dirs.add(directory)
                    yield FileInfo(directory, 0, 0.0, True)
            yield info

    # -- moving and deleting ------------------------------------------------------------------
    async def move(self, source: str, dest: str) -> None:
        info = await self.stat(source)
        if info.is_dir:
            raise PathNotFoundError(source)
        if info.size <= self.settings.multipartcopythresholdsize:
            try:
                await self.client.copy_object(
                    Bucket=self.bucket,
                    Key=self.key(dest),
                    CopySource={"Bucket": self.bucket, "Key": self.key(source)},
                    ContentType="application/octet-stream",
                    MetadataDirective="REPLACE",
                    **self._put_args(),
                )
            except ClientError as exc:
                if _is_not_found(exc):
                    raise PathNotFoundError(source) from None
                raise
        else:
            await self._multipart_copy(source, dest, info.size)
        await self.client.delete_object(Bucket=self.bucket, Key=self.key(source))

    async def _multipart_copy(self, source: str, dest: str, size: int) -> None:
        chunk = max(self.settings.multipartcopychunksize, MIN_CHUNK_SIZE)
        created = await self.client.create_multipart_upload(
            Bucket=self.bucket,
            Key=self.key(dest),
            ContentType="application/octet-stream",
            **self._put_args(),
        )
        upload_id = created["UploadId"]
        limit = asyncio.Semaphore(max(1, self.settings.multipartcopymaxconcurrency))

        async def copy(number: int, start: int) -> dict[str, Any]:
            end = min(start + chunk, size) - 1
            async with limit:
                result = await self.client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=self.key(dest),
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": self.key(source)},
                    CopySourceRange=f"bytes={start}-{end}",
                )
            return {"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]}

        try:
            parts = await asyncio.gather(
                *(copy(i + 1, start) for i, start in enumerate(range(0, size, chunk)))
            )
            await self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key(dest),
                UploadId=upload_id,
                MultipartUpload={"Parts": list(parts)},
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key(dest), UploadId=upload_id
                )
            raise

    async def delete(self, path: str) -> None:
        key = self.key(path)
        found = False
        batch: list[dict[str, str]] = []
        paginator = self.client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
            for item in page.get("Contents", []):
                if _under(item["Key"], key):
                    batch.append({"Key": item["Key"]})
            while len(batch) >= LIST_MAX_KEYS:
                await self._delete_keys(batch[:LIST_MAX_KEYS])
                batch = batch[LIST_MAX_KEYS:]
                found = True
        if batch:
            await self._delete_keys(batch)
            found = True
        aborted = await self.abort_uploads(path)
        if not found and not aborted:
            raise PathNotFoundError(path)

    async def _delete_keys(self, keys: _Keys) -> None:
        result = await self.client.delete_objects(
            Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
        )
        errors = result.get("Errors") or []
        if errors:
            first = errors[0]
            raise StorageDriverError(f"cannot delete {first.get('Key')}: {first.get('Code')}")

    async def multipart_uploads(self, path: str) -> Uploads:
        """Unfinished multipart uploads under ``path``: ``(path, upload id, initiated)``."""
        key = self.key(path)
        found: Uploads = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
            for upload in page.get("Uploads", []):
                if _under(upload["Key"], key):
                    found.append(
                        (
                            self.path_of(upload["Key"]),
                            upload["UploadId"],
                            _timestamp(upload.get("Initiated")),
                        )
                    )
        return found

    async def abort_upload(self, path: str, upload_id: str) -> None:
        """Abort one multipart upload (gone already: nothing to do)."""
        with contextlib.suppress(ClientError):
            await self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key(path), UploadId=upload_id
            )

    async def abort_uploads(self, path: str) -> int:
        """Abort every multipart upload under ``path``; how many there were."""
        uploads = await self.multipart_uploads(path)
        for upload_path, upload_id, _initiated in uploads:
            with contextlib.suppress(ClientError):
                await self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key(upload_path), UploadId=upload_id
                )
        return len(uploads)

    # -- writers ------------------------------------------------------------------------------
    async def writer(self, path: str, *, append: bool = False) -> FileWriter:
        key = self.key(path)
        if not append:
            created = await self.client.create_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                ContentType="application/octet-stream",
                **self._put_args(),
            )
            return _S3Writer(self, key, created["UploadId"], [])
        uploads = [u for u in await self.multipart_uploads(path) if u[0] == path]
        if not uploads:
            # A writer killed between completing its upload and starting the next one (see
            # _S3Writer._restart), or between a commit and the move that follows it, leaves
            # the object itself: a new multipart upload continues from it.
            info = await self.stat(path)
            if info.is_dir:
                raise PathNotFoundError(path)
            created = await self.client.create_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                ContentType="application/octet-stream",
                **self._put_args(),
            )
            adopted = _S3Writer(self, key, created["UploadId"], [])
            await adopted._adopt(info.size)
            adopted._size = info.size
            return adopted
        # The newest one, should a crash have left an older one behind.
        _path, upload_id, _initiated = max(uploads, key=lambda u: u[2])
        parts: list[dict[str, Any]] = []
        paginator = self.client.get_paginator("list_parts")
        try:
            async for page in paginator.paginate(Bucket=self.bucket, Key=key, UploadId=upload_id):
                parts += [
                    {"PartNumber": p["PartNumber"], "ETag": p["ETag"], "Size": int(p["Size"])}
                    for p in page.get("Parts", [])
                ]
        except ClientError as exc:
            if _is_not_found(exc):
                raise PathNotFoundError(path) from None
            raise
        parts.sort(key=lambda p: p["PartNumber"])
        # Parts go up in parallel: a writer killed mid-way may leave a later part without an
        # earlier one. What counts is the unbroken run from part 1; the parts after a gap are
        # dropped for good by completing the upload with that run and starting a new one from
        # the object (or, with no part 1, by starting afresh), so that no later listing can
        # take a stale part for a new one.
        run = 0
        while run < len(parts) and parts[run]["PartNumber"] == run + 1:
            run += 1
        resumed = _S3Writer(self, key, upload_id, parts[:run])
        if run < len(parts):
            if run == 0:
                await self.abort_upload(path, upload_id)
                created = await self.client.create_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    ContentType="application/octet-stream",
                    **self._put_args(),
                )
                return _S3Writer(self, key, created["UploadId"], [])
            await resumed._restart()
        return resumed

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        operation = {"GET": "get_object", "HEAD": "head_object"}.get(method)
        if operation is None:
            return None
        # Signed once per blob for half the validity: a client always gets at least 10 of
        # Distribution's 20 minutes (signing costs more than the rest of the redirect).
        params = {"Bucket": self.bucket, "Key": self.key(path)}
        return await self._presigned(
            ("redirect", operation, *sorted(params.items())), operation, params, PRESIGN_EXPIRY
        )


class _S3Writer(FileWriter):
    """One open view of a multipart upload; everything written is in S3 once ``close``
    returns (a part of any size flushed), so the next request may land on another replica."""

    def __init__(
        self, driver: S3Driver, key: str, upload_id: str, parts: list[dict[str, Any]]
    ) -> None:
        self._driver = driver
        self._key = key
        self._upload_id = upload_id
        self._parts = parts
        self._size = sum(p["Size"] for p in parts)
        self._pieces: list[bytes | memoryview] = []
        """What is written and not yet sent, as it came (one copy, when a part is joined)."""
        self._buffered = 0
        self._closed = False
        self._chunk = max(driver.settings.chunksize, MIN_CHUNK_SIZE)
        self._sending: list[asyncio.Task[None]] = []
        """Part uploads in flight, oldest first: at most ``PARTS_IN_FLIGHT`` while the next
        part fills (memory stays under ``PARTS_IN_FLIGHT + 1`` parts per writer)."""

    @property
    def size(self) -> int:
        return self._size

    @property
    def _client(self) -> Any:
        return self._driver.client

    async def write(self, data: bytes, *more: bytes) -> None:
        if self._closed:
            raise StorageDriverError("writer already closed")
        if self._parts and self._parts[-1]["Size"] < MIN_CHUNK_SIZE:
            await self._restart()
        for piece in (data, *more):
            if piece:
                self._pieces.append(piece)
                self._buffered += len(piece)
                self._size += len(piece)
        while self._buffered >= self._chunk:
            await self._send(self._take(self._chunk))

    def _take(self, count: int) -> bytes:
        """The first ``count`` buffered bytes as one block (the only copy of them)."""
        taken: list[bytes | memoryview] = []
        need = count
        while need:
            piece = self._pieces[0]
            if len(piece) <= need:
                taken.append(self._pieces.pop(0))
                need -= len(piece)
            else:
                view = memoryview(piece)
                taken.append(view[:need])
                self._pieces[0] = view[need:]
                need = 0
        self._buffered -= count
        return b"".join(taken)

    async def _send(self, block: bytes) -> None:
        """Start uploading ``block`` as the next part, once fewer than ``PARTS_IN_FLIGHT``
        are under way (a failed part fails this call)."""
        while len(self._sending) >= PARTS_IN_FLIGHT:
            await self._sending.pop(0)
        part: dict[str, Any] = {"PartNumber": len(self._parts) + 1, "Size": len(block)}
        self._parts.append(part)
        self._sending.append(asyncio.create_task(self._upload(part, block)))

    async def _upload(self, part: dict[str, Any], block: bytes) -> None:
        result = await self._client.upload_part(
            Bucket=self._driver.bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=part["PartNumber"],
            Body=block,
        )
        part["ETag"] = result["ETag"]

    async def _settle(self) -> None:
        """Wait for every part in flight (the first failure is this call's; the others are
        waited for all the same, so that none is left running)."""
        sending, self._sending = self._sending, []
        if sending:
            results = await asyncio.gather(*sending, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result

    async def _complete(self) -> None:
        await self._settle()
        await self._client.complete_multipart_upload(
            Bucket=self._driver.bucket,
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={
                "Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in self._parts]
            },
        )

    async def _restart(self) -> None:
        """The last part is under S3's minimum and more bytes come: complete the upload, start
        a new one, and put what was completed at its start (as Distribution's writer does)."""
        await self._complete()
        bucket = self._driver.bucket
        created = await self._client.create_multipart_upload(
            Bucket=bucket,
            Key=self._key,
            ContentType="application/octet-stream",
            **self._driver._put_args(),
        )
        self._upload_id = created["UploadId"]
        completed = sum(p["Size"] for p in self._parts)
        self._parts = []
        await self._adopt(completed)

    async def _adopt(self, completed: int) -> None:
        """Put the ``completed`` bytes of the object at the key at the start of this (new)
        multipart upload: copied as parts, or read back into the buffer under 5 MiB."""
        bucket = self._driver.bucket
        if completed < MIN_CHUNK_SIZE:
            response = await self._client.get_object(Bucket=bucket, Key=self._key)
            async with response["Body"] as body:
                head: bytes = await body.read()
            self._pieces.insert(0, head)
            self._buffered += len(head)
            return
        # Even parts: none under the 5 MiB minimum, none over the 5 GiB maximum of a copy.
        count = -(-completed // MAX_COPY_PART)
        step = -(-completed // count)
        for start in range(0, completed, step):
            end = min(start + step, completed) - 1
            number = len(self._parts) + 1
            result = await self._client.upload_part_copy(
                Bucket=bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                CopySource={"Bucket": bucket, "Key": self._key},
                CopySourceRange=f"bytes={start}-{end}",
            )
            self._parts.append(
                {
                    "PartNumber": number,
                    "ETag": result["CopyPartResult"]["ETag"],
                    "Size": end - start + 1,
                }
            )

    async def _flush(self) -> None:
        if self._buffered:
            await self._send(self._take(self._buffered))
        await self._settle()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._flush()

    async def commit(self) -> None:
        if self._closed:
            raise StorageDriverError("writer already closed")
        self._closed = True
        await self._flush()
        if not self._parts:
            # S3 completes no upload without parts: an empty object instead.
            await self._client.abort_multipart_upload(
                Bucket=self._driver.bucket, Key=self._key, UploadId=self._upload_id
            )
            await self._client.put_object(
                Bucket=self._driver.bucket, Key=self._key, Body=b"", **self._driver._put_args()
            )
            return
        await self._complete()

    async def cancel(self) -> None:
        self._closed = True
        self._pieces.clear()
        self._buffered = 0
        with contextlib.suppress(Exception):
            await self._settle()
        with contextlib.suppress(ClientError):
            await self._client.abort_multipart_upload(
                Bucket=self._driver.bucket, Key=self._key, UploadId=self._upload_id
            )
