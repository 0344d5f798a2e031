"""Attachments: uploads streamed to a content-addressed blob store, images made safe, signed downloads."""

from aurora.services.files.service import Download, Files, clean_name
from aurora.services.files.urls import FILE, THUMBNAIL, AttachmentUrls

__all__ = ["FILE", "THUMBNAIL", "AttachmentUrls", "Download", "Files", "clean_name"]
