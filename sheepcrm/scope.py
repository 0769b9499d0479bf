"""Validation of buckets, uids and record URIs.

Every path the client builds is made from parts that passed these checks; anything
else (another bucket, '..', encoded slashes, absolute URLs, query strings, look-alike
characters) is refused before a request is made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sheepcrm_mcp.sheepcrm.errors import SheepError

BUCKET_RE = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
UID_RE = re.compile(r"[A-Za-z0-9]{1,64}", re.ASCII)
CONTACT_TYPES = ("person", "organisation")
RECORD_TYPES = (*CONTACT_TYPES, "booking", "task", "journal", "segment", "member")


class ScopeError(SheepError, ValueError):
    """An identifier that would leave the configured bucket or is malformed."""


@dataclass(frozen=True)
class RecordUri:
    bucket: str
    type: str
    uid: str

    def __str__(self) -> str:
        return f"/{self.bucket}/{self.type}/{self.uid}/"


def check_uid(uid: str, what: str = "uid") -> str:
    if not isinstance(uid, str) or not UID_RE.fullmatch(uid):
        raise ScopeError(
            f"{what} is not valid: it must be 1-64 letters or digits, as returned by the search and list tools"
        )
    return uid


def parse_uri(value: str, bucket: str, types: tuple[str, ...] = CONTACT_TYPES) -> RecordUri:
    """Accept '/{bucket}/{type}/{uid}/' (trailing slash optional) for this bucket only."""
    if not isinstance(value, str):
        raise ScopeError("uri must be a string like /bucket/person/uid/")
    parts = value.split("/")
    if value.endswith("/"):
        parts = parts[:-1]
    example = f"/{bucket}/{types[0]}/5f1c0ffee0ddba11ab1e0001/"
    if len(parts) != 4 or parts[0] != "" or not UID_RE.fullmatch(parts[3]):
        raise ScopeError(f"uri {value!r:.80} is not a record uri; expected the form {example}")
    _, uri_bucket, uri_type, uid = parts
    if uri_bucket != bucket:
        raise ScopeError(f"uri {value!r:.80} is outside bucket '{bucket}'; this server only reads '{bucket}'")
    if uri_type not in types:
        raise ScopeError(f"uri {value!r:.80} has type '{uri_type:.20}'; expected one of {', '.join(types)}")
    return RecordUri(bucket, uri_type, uid)
