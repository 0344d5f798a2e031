"""What a file is, from its bytes (libmagic, the database of the `file` command), never the client's word."""

from __future__ import annotations

from pathlib import Path

import magic

# libmagic reads at most this much of a file to decide (its own default is 1 MiB).
SNIFF_BYTES = 1 << 20
FALLBACK = "application/octet-stream"


def sniff_content_type(path: Path) -> str:
    """The MIME type libmagic finds in the first bytes of the file (blocking: run it in an executor)."""
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    try:
        found = magic.from_buffer(head, mime=True)
    except magic.MagicException:
        return FALLBACK
    # "inode/x-empty" and the like are not content types a browser should see.
    return found if found and "/" in found and not found.startswith("inode/") else FALLBACK
