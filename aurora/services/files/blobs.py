"""Where file bytes live: a small interface and its local-filesystem implementation.

Blobs are content-addressed: a blob's name is the sha256 of its bytes, so identical files are stored
once and a blob never changes. Every method is blocking and runs in the files' own I/O executor
(never on the event loop, never in a database thread).

Removal races with a new upload of the same content, across processes too; it is made safe by order,
with no lock (services/files/service.py runs the steps): a removal first sets the blob aside, then
asks the database whether any upload still names it (a fresh read, in a database thread), and puts it
back if so, else drops it; an upload records its row first and then ensures the blob is in place,
putting its own copy back if not. Whichever runs second sees the other's step, so a recorded upload
never loses its bytes.

An S3-compatible store would implement the same methods (see docs/operations.md#files): incoming
files still stream to a local temporary file (sniffing and Pillow need a file); put() uploads it
under the sha256 key (a HEAD first makes identical content a no-op); ensure() is a HEAD (and a put
when missing); set_aside() copies the object to a "gone/" prefix and deletes it, put_back() copies
it back, drop() deletes the copy; path_of() gives way to a redirect to a presigned GET URL, issued
after Aurora's own access check, with Content-Type and Content-Disposition as presigned response
headers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

TEMP_MAX_AGE_S = 3600  # a temporary file this old belongs to no running upload


class Incoming:
    """A file being received: written chunk by chunk, hashed on the way, never held in memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._hash = hashlib.sha256()
        self._file = path.open("xb")

    def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self._file.write(chunk)
        self.size += len(chunk)

    def finish(self) -> str:
        """Flush to disk and close; returns the sha256 of what was written."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return self._hash.hexdigest()

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class BlobStore(Protocol):
    def incoming(self) -> Incoming: ...
    def temp_path(self, suffix: str = "") -> Path: ...
    def put(self, source: Path, sha256: str) -> None: ...
    def ensure(self, source: Path, sha256: str) -> None: ...
    def set_aside(self, sha256: str) -> Path | None: ...
    def put_back(self, aside: Path, sha256: str) -> None: ...
    def drop(self, aside: Path) -> None: ...
    def path_of(self, sha256: str) -> Path | None: ...
    def sweep_temp(self, now: float | None = None) -> int: ...


class LocalBlobStore:
    """<root>/blobs/ab/cd/<sha256> for the bytes, <root>/tmp/ for uploads in progress."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.tmp = root / "tmp"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256 hex digest")
        return self.blobs / sha256[:2] / sha256[2:4] / sha256

    def temp_path(self, suffix: str = "") -> Path:
        return self.tmp / f"{os.getpid()}-{secrets.token_hex(8)}{suffix}"

    def incoming(self) -> Incoming:
        return Incoming(self.temp_path(".part"))

    def put(self, source: Path, sha256: str) -> None:
        """Store source's bytes (already fsynced) under sha256; a no-op when that content is stored."""
        target = self._path(sha256)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Same file system: a hard link is atomic and copies nothing; an existing blob wins.
            os.link(source, target)
            return
        except FileExistsError:
            return
        except OSError:
            pass  # no hard links here: copy, then rename into place (atomic too)
        staged = target.with_name(f".{target.name}.{secrets.token_hex(4)}")
        shutil.copyfile(source, staged)
        with staged.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(staged, target)

    def ensure(self, source: Path, sha256: str) -> None:
        """After the upload row committed: the blob must be in place (a concurrent removal may have
        set it aside just before)."""
        self.put(source, sha256)

    def set_aside(self, sha256: str) -> Path | None:
        """Step one of a removal: move the blob out of reach; None if it is not there."""
        aside = self.tmp / f"gone-{sha256}-{secrets.token_hex(4)}"
        try:
            os.replace(self._path(sha256), aside)
        except FileNotFoundError:
            return None
        return aside

    def put_back(self, aside: Path, sha256: str) -> None:
        """The database still names the blob: undo set_aside (unless an upload already put it back)."""
        target = self._path(sha256)
        if target.exists():
            aside.unlink(missing_ok=True)
        else:
            os.replace(aside, target)

    def drop(self, aside: Path) -> None:
        aside.unlink(missing_ok=True)

    def path_of(self, sha256: str) -> Path | None:
        path = self._path(sha256)
        return path if path.is_file() else None

    def sweep_temp(self, now: float | None = None) -> int:
        """Remove temporary files left by uploads that died (a crash, a killed process)."""
        limit = (time.time() if now is None else now) - TEMP_MAX_AGE_S
        removed = 0
        for path in self.tmp.iterdir():
            try:
                if path.stat().st_mtime < limit:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
