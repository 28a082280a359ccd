"""Review app sign-in: per-region tokens, stored hashed in the region's store, with a role each.

A token reads ``<region>.<secret>``; only its sha256 is kept (``review/tokens.json``), so a copy
of the store does not leak working tokens. The region prefix lets a server recognise (and audit)
a token from another region instead of guessing.

Roles, each including the one before: labeler (label decisions, missed faces and plates),
reviewer (accept or reject whole clips), admin (read every decision).

Example:
    >>> token = Tokens(store).add("alice", "labeler")   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from curation.errors import CurationError
from curation.storage.store import RegionStore

__all__ = ["Tokens", "User", "ROLES"]

ROLES = ("labeler", "reviewer", "admin")
PATH = "review/tokens.json"


@dataclass(frozen=True)
class User:
    name: str
    role: str
    region: str

    def may(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    def __init__(self, store: RegionStore):
        self.store = store

    def _load(self) -> dict:
        return json.loads(self.store.read_text(PATH)) if self.store.exists(PATH) else {}

    def add(self, user: str, role: str) -> str:
        """A new token for user with role; returned once, stored hashed."""
        if role not in ROLES:
            raise CurationError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
        token = f"{self.store.region}.{secrets.token_urlsafe(24)}"
        entries = self._load()
        entries[_digest(token)] = {"user": user, "role": role, "created": datetime.now(timezone.utc).isoformat()}
        self.store.write_text(PATH, json.dumps(entries, indent=1, sort_keys=True))
        self.store.audit.append("admin", "review_token_add", PATH, None, user=user, role=role)
        return token

    def revoke(self, user: str) -> int:
        entries = self._load()
        kept = {k: v for k, v in entries.items() if v["user"] != user}
        self.store.write_text(PATH, json.dumps(kept, indent=1, sort_keys=True))
        self.store.audit.append("admin", "review_token_revoke", PATH, None, user=user, removed=len(entries) - len(kept))
        return len(entries) - len(kept)

    def users(self) -> list[dict]:
        return sorted(self._load().values(), key=lambda e: e["user"])

    def check(self, token: str | None) -> User | None:
        if not token:
            return None
        entry = self._load().get(_digest(token))
        return User(entry["user"], entry["role"], self.store.region) if entry else None

    @staticmethod
    def region_of(token: str | None) -> str | None:
        """The region a token claims (its prefix), for the audit record of a refused one."""
        return token.split(".", 1)[0] if token and "." in token else None
