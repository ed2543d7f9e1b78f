"""Decoded results to S3 (CONTRACT.md 5-6): streamed, with size, sha256 and small texts taken on the way."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import boto3

from ocr_poller.limits import DEFAULT_INLINE_TEXT_BYTES
from ocr_poller.model import StoredResult

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# S3 needs parts of at least 5 MiB but the last; a part goes once the buffer holds 8 MiB, so an upload holds
# about one part in memory whatever the result's size.
PART_BYTES = 8 * 1024 * 1024

_FORMATS = {
    "text": ("text/plain; charset=utf-8", "txt"),
    "pdf": ("application/pdf", "pdf"),
    "hocr": ("text/html; charset=utf-8", "html"),
    "json": ("application/json", "json"),
    "imagepng": ("image/png", "png"),
    "wav": ("audio/wav", "wav"),
    "wavfile": ("audio/wav", "wav"),
    "csv": ("text/csv", "csv"),
    "excel": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
}
_OTHER = ("application/octet-stream", "bin")


def result_format(result_type: str) -> tuple[str, str]:
    """Content type and file extension of an API result type (compared case-insensitively)."""
    return _FORMATS.get(result_type.lower(), _OTHER)


def result_key(prefix: str, task_id: str, index: int, result_type: str) -> str:
    """`{prefix}{taskId}/{index}-{type}.{ext}`; the type is reduced to [a-z0-9] so it is safe in a key."""
    name = re.sub(r"[^a-z0-9]", "", result_type.lower())[:40] or "result"
    return f"{prefix}{task_id}/{index}-{name}.{result_format(result_type)[1]}"


class _TextCapture:
    """Keeps a Text result's bytes while they fit in `limit`; once they do not, keeps nothing."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._data: bytearray | None = bytearray()

    def tap(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """The same chunks, seen on their way."""
        for chunk in chunks:
            if self._data is not None:
                if len(self._data) + len(chunk) > self._limit:
                    self._data = None
                else:
                    self._data += chunk
            yield chunk

    def text(self) -> tuple[str | None, bool]:
        """The decoded text and False, or None and True for a result too large or not UTF-8."""
        if self._data is None:
            return None, True
        try:
            return self._data.decode("utf-8"), False
        except UnicodeDecodeError:
            return None, True


class S3ResultStore:
    """Writes each result under its contract key: one PutObject when small, multipart when large.

    A `Text` result of at most `inline_text_bytes` that is valid UTF-8 also comes back decoded, for the
    record and the event; a larger one comes back marked `text_truncated`.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str,
        *,
        inline_text_bytes: int = DEFAULT_INLINE_TEXT_BYTES,
        client: S3Client | None = None,
    ) -> None:
        self._bucket = bucket
        self._prefix = prefix
        self._inline_text_bytes = inline_text_bytes
        self._s3 = client or boto3.client("s3")

    def put(self, task_id: str, index: int, result_type: str, chunks: Iterator[bytes]) -> StoredResult:
        """Upload the decoded chunks; the key is deterministic, so a repeated check overwrites, never adds."""
        key = result_key(self._prefix, task_id, index, result_type)
        content_type = result_format(result_type)[0]
        capture = _TextCapture(self._inline_text_bytes) if result_type.lower() == "text" else None
        if capture is not None:
            chunks = capture.tap(chunks)
        digest = hashlib.sha256()
        buffer = bytearray()
        for chunk in chunks:
            digest.update(chunk)
            buffer += chunk
            if len(buffer) >= PART_BYTES:
                size = self._multipart(key, content_type, buffer, chunks, digest)
                break
        else:
            size = len(buffer)
            self._s3.put_object(Bucket=self._bucket, Key=key, Body=bytes(buffer), ContentType=content_type)
        text, text_truncated = capture.text() if capture is not None else (None, False)
        return StoredResult(
            result_type, self._bucket, key, content_type, size, digest.hexdigest(), text, text_truncated
        )

    def delete(self, results: Sequence[StoredResult]) -> None:
        """Remove objects written by a check that turned out not to have a result."""
        if results:
            self._s3.delete_objects(
                Bucket=self._bucket, Delete={"Objects": [{"Key": result.key} for result in results]}
            )

    def _multipart(
        self,
        key: str,
        content_type: str,
        buffer: bytearray,
        chunks: Iterator[bytes],
        digest: hashlib._Hash,
    ) -> int:
        upload_id = self._s3.create_multipart_upload(Bucket=self._bucket, Key=key, ContentType=content_type)[
            "UploadId"
        ]
        parts: list[tuple[int, str]] = []
        try:
            # Each part is what the buffer holds once it reaches PART_BYTES (parts may differ in size).
            size = self._upload_part(key, upload_id, parts, _emptied(buffer))
            for chunk in chunks:
                digest.update(chunk)
                buffer += chunk
                if len(buffer) >= PART_BYTES:
                    size += self._upload_part(key, upload_id, parts, _emptied(buffer))
            if buffer:
                size += self._upload_part(key, upload_id, parts, _emptied(buffer))
            self._s3.complete_multipart_upload(
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in parts]},
            )
        except BaseException:
            # An aborted upload leaves no object behind, so a failed check never stores a partial result.
            self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
            raise
        return size

    def _upload_part(self, key: str, upload_id: str, parts: list[tuple[int, str]], body: bytes) -> int:
        number = len(parts) + 1
        etag = self._s3.upload_part(
            Bucket=self._bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )["ETag"]
        parts.append((number, etag))
        return len(body)


def _emptied(buffer: bytearray) -> bytes:
    """The buffer's bytes, the buffer emptied: a part is held once while it uploads, not three times."""
    body = bytes(buffer)
    buffer.clear()
    return body
