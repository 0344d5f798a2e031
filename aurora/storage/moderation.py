"""Admin role, deactivation, reports and the audit log: blocking functions, run through Storage."""

from __future__ import annotations

import json
from typing import Any

import peewee as pw

from aurora.errors import AuroraError, not_found
from aurora.storage.conversations import require_member
from aurora.storage.models import AuditEntry, Message, Report, User, utcnow
from aurora.storage.records import MESSAGE_KINDS, iso, user_record


def admin_record(user: User) -> dict[str, Any]:
    return {**user_record(user), "is_admin": bool(user.is_admin), "deactivated_at": iso(user.deactivated_at)}


def audit_txn(actor_id: int | None, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
    AuditEntry.create(actor=actor_id, action=action, target=target,
                      detail=json.dumps(detail, ensure_ascii=False) if detail else None)


def set_admin_txn(username: str, admin: bool, actor_id: int | None) -> dict[str, Any]:
    user = User.get_or_none(User.username_key == username.lower())
    if user is None:
        raise not_found("user")
    User.update(is_admin=admin).where(User.id == user.id).execute()
    audit_txn(actor_id, "admin.grant" if admin else "admin.revoke", f"user:{user.id}", {"username": user.username})
    user.is_admin = admin
    return admin_record(user)


def list_users(prefix: str, limit: int, offset: int) -> list[dict[str, Any]]:
    query = User.select().order_by(User.username_key).limit(limit).offset(offset)
    if prefix:
        key, n = prefix.lower(), len(prefix)
        query = query.where((pw.fn.SUBSTR(User.username_key, 1, n) == key)
                            | (pw.fn.LOWER(pw.fn.SUBSTR(User.display_name, 1, n)) == key))
    return [admin_record(u) for u in query]


def set_deactivated_txn(user_id: int, deactivated: bool, actor_id: int) -> dict[str, Any]:
    """Deactivate (every token of theirs dies with the version bump) or reactivate a user."""
    user = User.get_or_none(User.id == user_id)
    if user is None:
        raise not_found("user")
    if deactivated and user_id == actor_id:
        raise AuroraError("invalid", "an admin cannot deactivate themselves")
    when = utcnow() if deactivated else None
    User.update(deactivated_at=when, token_version=User.token_version + (1 if deactivated else 0)) \
        .where(User.id == user_id).execute()
    audit_txn(actor_id, "user.deactivate" if deactivated else "user.reactivate", f"user:{user_id}",
              {"username": user.username})
    user.deactivated_at = when
    return admin_record(user)


def report_record(report: Report, reporter: str) -> dict[str, Any]:
    return {"id": report.id, "conversation_id": report.conversation_id, "seq": report.seq,
            "reporter": {"id": report.reporter_id, "username": reporter}, "reason": report.reason,
            "created_at": iso(report.created_at)}


def add_report_txn(conversation_id: int, seq: int, reporter_id: int, reason: str) -> tuple[dict[str, Any], bool]:
    """(report, created): a member reports a message of their conversation; reporting it again is a no-op."""
    require_member(conversation_id, reporter_id)
    if not Message.select().where((Message.conversation == conversation_id) & (Message.seq == seq)
                                  & Message.kind.in_(MESSAGE_KINDS)).exists():
        raise not_found("message")
    reporter = User.get_by_id(reporter_id).username
    existing = Report.get_or_none((Report.conversation == conversation_id) & (Report.seq == seq)
                                  & (Report.reporter == reporter_id))
    if existing is not None:
        return report_record(existing, reporter), False
    report = Report.create(conversation=conversation_id, seq=seq, reporter=reporter_id, reason=reason)
    return report_record(report, reporter), True


def list_reports(limit: int, before_id: int | None) -> list[dict[str, Any]]:
    query = Report.select().order_by(Report.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(Report.id < before_id)
    rows = list(query)
    names = dict(User.select(User.id, User.username).where(User.id.in_({r.reporter_id for r in rows})).tuples())
    reports = []
    for report in rows:
        record = report_record(report, names.get(report.reporter_id, ""))
        message = Message.get_or_none((Message.conversation == report.conversation_id) & (Message.seq == report.seq))
        record["message"] = None if message is None else {
            "sender_id": message.sender_id, "body": message.body, "deleted": bool(message.deleted),
            "created_at": iso(message.created_at)}
        reports.append(record)
    return reports


def list_audit(limit: int, before_id: int | None) -> list[dict[str, Any]]:
    query = AuditEntry.select().order_by(AuditEntry.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return [{"id": a.id, "actor_id": a.actor_id, "action": a.action, "target": a.target,
             "detail": json.loads(a.detail) if a.detail else None, "created_at": iso(a.created_at)} for a in query]
