"""Who is calling: on a hosted server (SHEEPCRM_AUTH=oauth) the signed-in person, else nobody.

A `Caller` is their subject at the issuer, email, profile and (members) the one contact they are. The
HTTP layer sets it per request in a context variable that the SDK carries into tool calls, so tools and
the audit log read it with `current_caller()`. Kept apart from `auth.py` so that stdio and token mode
never import the JOSE library.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

ProfileName = Literal["staff", "helpdesk", "member"]
PROFILES: tuple[ProfileName, ...] = ("staff", "helpdesk", "member")  # most powerful first


@dataclass(frozen=True)
class Caller:
    """A signed-in person: their subject at the issuer, email, profile, and (members) their contact uri."""

    sub: str
    email: str | None
    profile: ProfileName
    person: str | None = None
    roles: tuple[str, ...] = ()
    name: str | None = None

    def audit(self) -> dict[str, Any]:
        return {"sub": self.sub, "email": self.email, "profile": self.profile}


_caller: ContextVar[Caller | None] = ContextVar("sheepcrm_caller", default=None)


def current_caller() -> Caller | None:
    """The caller of the request being answered (None on stdio and in token mode)."""
    return _caller.get()


def set_caller(caller: Caller | None) -> None:
    _caller.set(caller)
