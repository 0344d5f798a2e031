"""Signed download URLs: an <img src> cannot send an Authorization header, so the URL is the credential.

Each URL is signed for one viewer (itsdangerous, salt "aurora-attachment", the token keys: the first
signs, all verify) and expires after attachment_url_ttl_s. Serving it checks the signature, the age
and then, live, that the viewer is still a member of the conversation the file was posted in: a user
who leaves loses access at once, even with an unexpired URL. URLs are computed for each response
(never stored), so any message fetch hands out fresh ones.
"""

from __future__ import annotations

import time
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from aurora.errors import AuroraError

SALT = "aurora-attachment"
FILE, THUMBNAIL = "f", "t"
ROUTE = "/api/files"


class _ClockedSerializer(URLSafeTimedSerializer):
    """Signs with an injectable clock (tests sign URLs that are already expired)."""

    def __init__(self, *args: Any, clock: Any = time.time, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def make_signer(self, salt: Any = None) -> Any:
        signer = super().make_signer(salt)
        signer.get_timestamp = lambda: int(self._clock())
        return signer


class AttachmentUrls:
    def __init__(self, secret_keys: tuple[str, ...], ttl_s: int, clock: Any = time.time) -> None:
        # itsdangerous: the last key of the list signs, all verify; settings put the signing key first.
        self._serializer = _ClockedSerializer(list(reversed(secret_keys)), salt=SALT, clock=clock)
        self.ttl_s = ttl_s

    def url(self, upload_id: int, viewer_id: int, variant: str = FILE) -> str:
        token = self._serializer.dumps([upload_id, viewer_id, variant])
        suffix = "/thumbnail" if variant == THUMBNAIL else ""
        return f"{ROUTE}/{upload_id}{suffix}?sig={token}"

    def verify(self, token: str | None, upload_id: int, variant: str) -> int:
        """The viewer id the URL was signed for; 403 forbidden when tampered with, expired or for
        another file."""
        if not token:
            raise AuroraError("forbidden", "a signed URL is required (take it from the message)")
        try:
            signed_upload, viewer_id, signed_variant = self._serializer.loads(token, max_age=self.ttl_s)
        except SignatureExpired:
            raise AuroraError("forbidden", "this link has expired; fetch the message again for a fresh one") from None
        except (BadSignature, ValueError, TypeError):
            raise AuroraError("forbidden", "this link is not valid") from None
        if signed_upload != upload_id or signed_variant != variant or not isinstance(viewer_id, int):
            raise AuroraError("forbidden", "this link is not valid")
        return viewer_id

    def present(self, record: dict[str, Any] | None, viewer_id: int) -> dict[str, Any] | None:
        """A message record as one viewer gets it: its attachments with URLs signed for that viewer."""
        if not record or not record.get("attachments"):
            return record
        attachments = []
        for a in record["attachments"]:
            thumb = self.url(a["id"], viewer_id, THUMBNAIL) if a.get("width") is not None else None
            attachments.append({**a, "url": self.url(a["id"], viewer_id), "thumbnail_url": thumb})
        return {**record, "attachments": attachments}
