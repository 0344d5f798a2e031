"""Uploads, downloads and the lifecycle of files.

The slow or risky work (writing and hashing chunks, sniffing, Pillow) runs in the files' own bounded
executors, never on the event loop, never in the database threads, never on the send path: by the
time a message names an upload, its bytes are stored and checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import unicodedata
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

from aurora.errors import AuroraError, invalid
from aurora.services.files.blobs import BlobStore, Incoming, LocalBlobStore, sha256_of
from aurora.services.files.images import ProcessedImage, process_image
from aurora.services.files.sniff import sniff_content_type
from aurora.services.files.urls import FILE, AttachmentUrls
from aurora.settings import Settings
from aurora.storage import uploads as upload_store
from aurora.storage.database import Storage
from aurora.storage.models import utcnow
from aurora.storage.uploads import IMAGE_TYPES

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_NAME_CHARS = 255
IO_THREADS = 4
# Image jobs waiting or running per image thread; beyond that an upload answers unavailable.
IMAGE_QUEUE_PER_WORKER = 8


@dataclass(frozen=True)
class Download:
    path: Path
    name: str
    content_type: str
    inline: bool


def clean_name(raw: Any) -> str:
    """The file's name as shown: the last path component, no control characters, at most 255."""
    if raw is None:
        raise invalid("a file name is required (the multipart filename, or ?filename= for a raw body)")
    if not isinstance(raw, str):
        raise invalid("the file name must be a string")
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    if name in ("", ".", ".."):
        raise invalid("the file name must not be empty")
    return name[:MAX_NAME_CHARS]


class Files:
    def __init__(self, settings: Settings, storage: Storage, blobs: BlobStore | None = None) -> None:
        self._settings = settings
        self._storage = storage
        self.blobs: BlobStore = blobs or LocalBlobStore(Path(settings.data_dir) / "files")
        self.urls = AttachmentUrls(settings.secret_keys, settings.attachment_url_ttl_s)
        self._io = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="aurora-files-io")
        self._images = ThreadPoolExecutor(settings.file_workers, thread_name_prefix="aurora-files-image")
        self._image_jobs = 0
        self._image_jobs_max = settings.file_workers * IMAGE_QUEUE_PER_WORKER
        self._sweeper: asyncio.Task[None] | None = None
        self._releases: set[asyncio.Task[Any]] = set()
        # Pillow's own bomb check (at open) follows the same limit as ours.
        Image.MAX_IMAGE_PIXELS = settings.max_image_pixels

    async def _on_io(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    # -- upload ------------------------------------------------------------------------
    async def receive(self, user: dict[str, Any], filename: Any, chunks: AsyncIterator[bytes],
                      declared_length: int | None = None) -> dict[str, Any]:
        """Stream an upload to disk, check it, store it; returns the upload record."""
        name = clean_name(filename)
        limit = self._settings.max_upload_bytes
        quota = self._settings.upload_quota_bytes
        if quota:
            used = await self._storage.read(upload_store.usage_bytes, user["id"])
            if used >= quota:
                raise AuroraError("too_large", f"your upload quota of {quota} bytes is used up")
            limit = min(limit, quota - used)
        if declared_length is not None and declared_length > limit:
            raise self._too_large(limit)
        incoming: Incoming = await self._on_io(self.blobs.incoming)
        temps: list[Path] = [incoming.path]
        try:
            async for chunk in chunks:
                if incoming.size + len(chunk) > limit:
                    raise self._too_large(limit)
                await self._on_io(incoming.write, chunk)
            if incoming.size == 0:
                raise invalid("the file is empty")
            sha256 = await self._on_io(incoming.finish)
            return await self._store(user, name, incoming, sha256, temps, quota)
        finally:
            await self._on_io(_remove_all, incoming, temps)

    def _too_large(self, limit: int) -> AuroraError:
        if limit < self._settings.max_upload_bytes:
            return AuroraError("too_large", f"the file does not fit in your remaining upload quota ({limit} bytes)")
        return AuroraError("too_large", f"the file is larger than max_upload_bytes ({limit} bytes)")

    async def _store(self, user: dict[str, Any], name: str, incoming: Incoming, sha256: str,
                     temps: list[Path], quota: int) -> dict[str, Any]:
        content_type = await self._on_io(sniff_content_type, incoming.path)
        source, size, width, height, thumb_sha = incoming.path, incoming.size, None, None, None
        image: ProcessedImage | None = None
        if content_type in IMAGE_TYPES:
            stored, thumb = self.blobs.temp_path(".img"), self.blobs.temp_path(".thumb")
            temps += [stored, thumb]
            image = await self._process(incoming.path, content_type, stored, thumb)
            width, height = image.width, image.height
            if image.stored != incoming.path:
                source = image.stored
                sha256 = await self._on_io(sha256_of, source)
                size = (await self._on_io(source.stat)).st_size
            thumb_sha = await self._on_io(sha256_of, image.thumbnail)
        await self._on_io(self.blobs.put, source, sha256)
        if image is not None and thumb_sha is not None:
            await self._on_io(self.blobs.put, image.thumbnail, thumb_sha)
        record = await self._storage.write(
            upload_store.create_upload_txn, user["id"], name, content_type, size, sha256, width, height,
            thumb_sha, quota,
        )
        # A removal of identical content may have set the blob aside before the row committed.
        await self._on_io(self.blobs.ensure, source, sha256)
        if image is not None and thumb_sha is not None:
            await self._on_io(self.blobs.ensure, image.thumbnail, thumb_sha)
        log.info("Upload %s by user %s: %s, %d bytes", record["id"], user["id"], content_type, size)
        return record

    async def _process(self, source: Path, content_type: str, stored: Path, thumb: Path) -> ProcessedImage:
        if self._image_jobs >= self._image_jobs_max:
            raise AuroraError("unavailable", "the server is busy processing images; try again shortly")
        self._image_jobs += 1
        try:
            s = self._settings
            return await asyncio.get_running_loop().run_in_executor(
                self._images, lambda: process_image(
                    source, content_type, stored, thumb, max_pixels=s.max_image_pixels,
                    thumbnail_px=s.thumbnail_px, strip=s.strip_image_metadata,
                ),
            )
        finally:
            self._image_jobs -= 1

    # -- download ------------------------------------------------------------------------
    async def download(self, upload_id: Any, token: str | None, variant: str = FILE) -> Download:
        try:
            uid = int(upload_id)
        except (TypeError, ValueError):
            raise AuroraError("not_found", "file not found") from None
        viewer_id = self.urls.verify(token, uid, variant)
        target = await self._storage.read(upload_store.download_target, uid, viewer_id)
        if target is None:  # unknown, never posted, deleted, or the viewer is not (or no longer) a member
            raise AuroraError("not_found", "file not found")
        if variant == FILE:
            sha, content_type, name = target["sha256"], target["content_type"], target["name"]
        else:
            if not target["thumbnail_sha256"]:
                raise AuroraError("not_found", "this file has no thumbnail")
            sha, content_type = target["thumbnail_sha256"], "image/webp"
            name = target["name"].rsplit(".", 1)[0] + ".thumbnail.webp"
        path = await self._on_io(self.blobs.path_of, sha)
        if path is None:
            log.error("upload %s names blob %s, which is missing", uid, sha[:12])
            raise AuroraError("not_found", "file not found")
        return Download(path, name, content_type, inline=content_type in IMAGE_TYPES)

    # -- lifecycle -------------------------------------------------------------------------
    def release_later(self, shas: list[str]) -> None:
        """After a commit that dropped upload rows (a deleted message): remove the blobs nothing names."""
        if not shas:
            return
        task = asyncio.create_task(self.release(shas))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def releases_done(self) -> None:
        """Wait for the removals scheduled so far (release_later) to finish."""
        while self._releases:
            await asyncio.gather(*list(self._releases), return_exceptions=True)

    async def release(self, shas: list[str]) -> int:
        removed = 0
        # Blobs still named stay where they are (never moved, so downloads never miss them); only
        # the others go through the set-aside / check again / drop steps.
        try:
            named_now = await self._storage.read(upload_store.referenced_blobs, shas)
        except Exception:
            log.exception("checking %d blob(s) for removal failed; the next sweep tries again", len(shas))
            return 0
        for sha in shas:
            if sha in named_now:
                continue
            try:
                aside = await self._on_io(self.blobs.set_aside, sha)
                if aside is None:
                    continue
                named = await self._storage.read(upload_store.referenced_blobs, [sha])
            except Exception:
                log.exception("removing blob %s failed; the next sweep tries again", sha[:12])
                continue
            if named:
                await self._on_io(self.blobs.put_back, aside, sha)
            else:
                await self._on_io(self.blobs.drop, aside)
                removed += 1
        return removed

    async def sweep(self, now: dt.datetime | None = None) -> dict[str, int]:
        """Remove uploads never attached within upload_orphan_ttl_s (as of `now`, UTC) and their
        unreferenced blobs, and temporary files of dead uploads. Tests call this with a later `now`."""
        now = now or utcnow()
        cutoff = now - dt.timedelta(seconds=self._settings.upload_orphan_ttl_s)
        orphans = blobs = 0
        while True:
            shas = await self._storage.write(upload_store.delete_orphans_txn, cutoff)
            if not shas:
                break
            orphans += 1
            blobs += await self.release(shas)
        temps = await self._on_io(self.blobs.sweep_temp)  # by the real clock: uploads in flight keep theirs
        return {"batches": orphans, "blobs": blobs, "temp_files": temps}

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.upload_sweep_interval_s)
            try:
                result = await self.sweep()
                if result["blobs"] or result["temp_files"]:
                    log.info("File sweep: %d blob(s), %d temporary file(s) removed",
                             result["blobs"], result["temp_files"])
            except Exception:
                log.exception("the file sweep failed; it runs again in %s s", self._settings.upload_sweep_interval_s)

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="aurora-file-sweeper")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._releases:
            await asyncio.gather(*self._releases, return_exceptions=True)
        # In a thread: waiting for a running thumbnail or file write must not stall the event loop.
        await asyncio.to_thread(_shut_down, self._io, self._images)


def _shut_down(*executors: ThreadPoolExecutor) -> None:
    for executor in executors:
        executor.shutdown(wait=True)


def _remove_all(incoming: Incoming, temps: list[Path]) -> None:
    incoming.discard()
    for path in temps:
        path.unlink(missing_ok=True)
