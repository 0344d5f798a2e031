"""Uploads and the attachments of messages: blocking functions, run through Storage.

An upload row names its bytes by sha256 (the blob store keeps each distinct content once) and is
attached to at most one message (message_id, position). The writer attaches in the transaction that
inserts the message (attach_txn) and detaches in the one that deletes it (detach_txn), so a message
and its files never disagree. Which blobs may go is decided here (unreferenced); removing their
bytes is the blob store's job, outside the database threads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import peewee as pw

from aurora.errors import AuroraError
from aurora.storage.models import Membership, Message, Upload, User

# Raster types Pillow decodes, strips and thumbnails; only these are ever served inline.
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


def _is_postgresql() -> bool:
    db = Upload._meta.database
    return isinstance(db.obj if isinstance(db, pw.DatabaseProxy) else db, pw.PostgresqlDatabase)


def upload_record(upload: Upload) -> dict[str, Any]:
    """The answer of POST /api/uploads: width and height only for images."""
    record: dict[str, Any] = {
        "id": upload.id, "name": upload.name, "content_type": upload.content_type, "size": upload.size,
        "sha256": upload.sha256,
    }
    if upload.width is not None:
        record["width"], record["height"] = upload.width, upload.height
    return record


def attachment_record(upload: Upload) -> dict[str, Any]:
    """An attachment as messages carry it; the service fills url and thumbnail_url per viewer."""
    return {
        "id": upload.id, "name": upload.name, "content_type": upload.content_type, "size": upload.size,
        "width": upload.width, "height": upload.height, "url": None, "thumbnail_url": None,
    }


def usage_bytes(owner_id: int) -> int:
    return int(Upload.select(pw.fn.COALESCE(pw.fn.SUM(Upload.size), 0)).where(Upload.owner == owner_id).scalar())


def create_upload_txn(owner_id: int, name: str, content_type: str, size: int, sha256: str,
                      width: int | None, height: int | None, thumbnail_sha256: str | None,
                      quota: int) -> dict[str, Any]:
    """Record an upload whose blob is in place; the quota is checked again here, under a lock on the
    owner (PostgreSQL: the user row; SQLite: the write transaction), so parallel uploads cannot pass
    it together."""
    if _is_postgresql():
        User.select(User.id).where(User.id == owner_id).for_update().execute()
    if quota:
        used = usage_bytes(owner_id)
        if used + size > quota:
            raise AuroraError("too_large", f"this upload would exceed your upload quota of {quota} bytes "
                              f"({used} used)")
    upload = Upload.create(owner=owner_id, name=name, content_type=content_type, size=size, sha256=sha256,
                           width=width, height=height, thumbnail_sha256=thumbnail_sha256)
    return upload_record(upload)


# -- attaching, inside the message writer's transaction -----------------------------------
def uploads_for_attach(upload_ids: Iterable[int]) -> dict[int, Upload]:
    """The named uploads, locked against another process's writer attaching them too (PostgreSQL)."""
    ids = sorted(set(upload_ids))
    if not ids:
        return {}
    query = Upload.select().where(Upload.id.in_(ids)).order_by(Upload.id)
    if _is_postgresql():
        query = query.for_update()
    return {u.id: u for u in query}


def check_attachable(upload_ids: list[int], sender_id: int, uploads: dict[int, Upload], claimed: set[int]) -> None:
    """Only the sender's own uploads, not attached yet (nor by an earlier message of the batch)."""
    for upload_id in upload_ids:
        upload = uploads.get(upload_id)
        if upload is None or upload.owner_id != sender_id:
            raise AuroraError("not_found", f"upload not found: {upload_id}")
        if upload.message_id is not None or upload_id in claimed:
            raise AuroraError("conflict", f"upload {upload_id} is already attached to a message")


def attach_txn(db: pw.Database, message_id: int, upload_ids: list[int]) -> None:
    p = db.param
    for position, upload_id in enumerate(upload_ids):
        cursor = db.execute_sql(
            f'UPDATE "upload" SET message_id = {p}, position = {p} WHERE id = {p} AND message_id IS NULL',
            (message_id, position, upload_id),
        )
        if cursor.rowcount != 1:
            # Attached meanwhile by another transaction: fail the batch; the per-item retry re-plans
            # and answers this item conflict.
            raise RuntimeError(f"upload {upload_id} was attached concurrently")


def detach_txn(db: pw.Database, message_id: int) -> list[str]:
    """A deleted message's uploads go; returns the blobs they named (to remove if now unreferenced)."""
    p = db.param
    rows = db.execute_sql(
        f'DELETE FROM "upload" WHERE message_id = {p} RETURNING sha256, thumbnail_sha256', (message_id,)
    ).fetchall()
    return sorted({sha for row in rows for sha in row if sha})


def attachments_of(message_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    ids = sorted(set(message_ids))
    found: dict[int, list[dict[str, Any]]] = {}
    if not ids:
        return found
    for upload in Upload.select().where(Upload.message.in_(ids)).order_by(Upload.message, Upload.position):
        found.setdefault(upload.message_id, []).append(attachment_record(upload))
    return found


# -- downloads -----------------------------------------------------------------------------
def download_target(upload_id: int, viewer_id: int) -> dict[str, Any] | None:
    """The upload if the viewer may read it now: attached to a message that is not deleted, in a
    conversation the viewer is a member of. None otherwise (unknown, orphan, left, deleted)."""
    row = (
        Upload.select(Upload)
        .join(Message, on=(Upload.message == Message.id))
        .join(Membership, on=((Membership.conversation == Message.conversation) & (Membership.user == viewer_id)))
        .where((Upload.id == upload_id) & (Message.deleted.is_null() | (Message.deleted == False)))  # noqa: E712
        .first()
    )
    if row is None:
        return None
    return {"id": row.id, "name": row.name, "content_type": row.content_type, "size": row.size,
            "sha256": row.sha256, "thumbnail_sha256": row.thumbnail_sha256}


# -- lifecycle -------------------------------------------------------------------------------
def delete_orphans_txn(created_before: dt.datetime, limit: int = 1000) -> list[str]:
    """Remove uploads never attached and older than the cutoff; returns the blobs they named."""
    rows = list(
        Upload.select(Upload.id, Upload.sha256, Upload.thumbnail_sha256)
        .where(Upload.message.is_null() & (Upload.created_at < created_before))
        .order_by(Upload.id).limit(limit)
    )
    if not rows:
        return []
    Upload.delete().where(Upload.id.in_([r.id for r in rows]) & Upload.message.is_null()).execute()
    return sorted({sha for r in rows for sha in (r.sha256, r.thumbnail_sha256) if sha})


def referenced_blobs(shas: Iterable[str]) -> set[str]:
    """Which of these blobs an upload row still names (as its file or its thumbnail)."""
    wanted = sorted(set(shas))
    if not wanted:
        return set()
    rows = Upload.select(Upload.sha256, Upload.thumbnail_sha256).where(
        Upload.sha256.in_(wanted) | Upload.thumbnail_sha256.in_(wanted)
    ).tuples()
    named = {sha for row in rows for sha in row if sha}
    return named & set(wanted)
