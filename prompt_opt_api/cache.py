"""Cache keys and the small cache protocol models may use for data they derive themselves."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol, runtime_checkable


def cache_key(payload: dict[str, Any]) -> str:
    """sha256 of the payload as sorted, compact JSON (never Python's ``hash()``)."""
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@runtime_checkable
class DerivedDataCache(Protocol):
    """Persistent text values keyed by ``cache_key`` (e.g. OCR text per image sha256).

    The engine hands its store to an answer model through ``AnswerModel.use_cache``;
    the model never imports the engine. Values must be a pure function of the key's
    payload: any process may read what another wrote.
    """

    def get_blob(self, key: str) -> str | None:
        """The stored value, or None."""

    def put_blob(self, key: str, value: str) -> None:
        """Store ``value`` under ``key`` (idempotent)."""
