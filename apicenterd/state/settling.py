"""The rows and statements of a settle, shared by the SQLite and PostgreSQL stores (``?`` placeholders;
the PostgreSQL store converts them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import Settlement

__all__ = ["AUDIT_INSERT", "CURSOR_UPSERT", "LETTER_FAILED", "LETTER_RESOLVED", "LINK_UPSERT", "settle_rows"]


LETTER_FAILED = (
    "INSERT INTO dead_letters (flow, entity, source_id, key, payload, error, attempts, "
    "first_failed_at, last_failed_at, status) VALUES (?,?,?,?,?,?,1,?,?,'open') "
    "ON CONFLICT (flow, source_id) DO UPDATE SET payload=excluded.payload, error=excluded.error, "
    "key=excluded.key, attempts=dead_letters.attempts + 1, last_failed_at=excluded.last_failed_at, "
    "status='open', purged_at=NULL, warned_at=NULL"
)
LETTER_RESOLVED = "UPDATE dead_letters SET status='resolved' WHERE flow=? AND source_id=? AND status='open'"
AUDIT_INSERT = (
    "INSERT INTO audit (flow, run_id, entity, source_id, target_id, key, action, reason, at, diff) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
LINK_UPSERT = (
    "INSERT INTO links (source, entity, source_id, target, target_id, hash, updated_at) "
    "VALUES (?,?,?,?,?,?,?) ON CONFLICT (source, entity, source_id, target) DO UPDATE SET "
    "target_id=excluded.target_id, hash=excluded.hash, updated_at=excluded.updated_at"
)
CURSOR_UPSERT = (
    "INSERT INTO cursors (flow, cursor, updated_at) VALUES (?,?,?) ON CONFLICT (flow) "
    "DO UPDATE SET cursor=excluded.cursor, updated_at=excluded.updated_at"
)


def settle_rows(
    flow: str, settlements: Sequence[Settlement], now: float
) -> tuple[list[tuple[bool, tuple[Any, ...]]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rows :meth:`StateStore.settle_many` writes, on either backend: dead-letter
    changes in order (True: the record failed, with its payload), audit rows, link rows."""
    letters: list[tuple[bool, tuple[Any, ...]]] = []
    audits: list[tuple[Any, ...]] = []
    links: list[tuple[Any, ...]] = []
    for item in settlements:
        audit, link = item.audit, item.link
        if audit.flow != flow:
            raise ValueError(f"settle_many: a record of flow {audit.flow!r} settled with flow {flow!r}")
        if audit.action == "failed":
            if item.payload is not None:
                letters.append(
                    (True, (flow, audit.entity, audit.source_id, audit.key, item.payload, audit.reason or "", now, now))
                )
        else:
            letters.append((False, (flow, audit.source_id)))
        audits.append(
            (
                flow,
                audit.run_id,
                audit.entity,
                audit.source_id,
                audit.target_id,
                audit.key,
                audit.action,
                audit.reason,
                audit.at or now,
                audit.diff,
            )
        )
        if link is not None:
            links.append((link.source, link.entity, link.source_id, link.target, link.target_id, link.hash, now))
    return letters, audits, links

