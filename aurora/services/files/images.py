"""Images (PNG, JPEG, GIF, WebP) through Pillow: refused beyond a pixel limit, orientation applied,
metadata stripped, a thumbnail made. Blocking and CPU-bound: runs only in the files' image executor.

Stripping re-encodes the pixels into a new file that carries none of the source's metadata: no
EXIF (so no GPS position, camera serial or the orientation tag, which has been applied to the
pixels), no XMP, no comments; only the ICC colour profile is kept (it changes how colours look and
says nothing about the sender). JPEG is re-encoded at quality 90; PNG, GIF and WebP losslessly for
what they hold (GIF/WebP animations keep every frame and its duration).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from aurora.errors import invalid

# Pillow warns about images between its limit and twice it; ours refuses them itself with `invalid`.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

PIL_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}
# An animation's frames together may hold this many times the single-image pixel limit.
ANIMATION_PIXEL_FACTOR = 4
MAX_FRAMES = 1000
JPEG_QUALITY = 90
THUMBNAIL_QUALITY = 80
# What survives stripping: colour, transparency and timing, nothing about the picture's origin.
_KEPT_INFO = ("icc_profile", "transparency", "duration", "loop", "background")


@dataclass(frozen=True)
class ProcessedImage:
    width: int
    height: int
    stored: Path  # the file to store (the stripped copy, or the original when not stripping)
    thumbnail: Path


def _bomb(width: int, height: int, limit: int) -> None:
    if width * height > limit:
        raise invalid(f"image too large: {width}x{height} pixels (at most {limit} pixels)")


def process_image(source: Path, content_type: str, stored: Path, thumbnail: Path, *, max_pixels: int,
                  thumbnail_px: int, strip: bool) -> ProcessedImage:
    """Check and process an image whose bytes libmagic identified as content_type."""
    fmt = PIL_FORMATS[content_type]
    try:
        with Image.open(source, formats=[fmt]) as image:
            # Only the header has been read: refuse bombs before a single pixel is decoded.
            _bomb(image.width, image.height, max_pixels)
            frames = getattr(image, "n_frames", 1)
            if frames > MAX_FRAMES or image.width * image.height * frames > max_pixels * ANIMATION_PIXEL_FACTOR:
                raise invalid(f"animation too large: {frames} frames of {image.width}x{image.height}")
            upright = ImageOps.exif_transpose(image) if frames == 1 else image
            if strip:
                _save_stripped(image if frames > 1 else upright, fmt, stored, frames)
                result_path = stored
            else:
                result_path = source
            first = upright if frames == 1 else _first_frame(image)
            _save_thumbnail(first, thumbnail, thumbnail_px)
            return ProcessedImage(upright.width, upright.height, result_path, thumbnail)
    except Image.DecompressionBombError as exc:  # Pillow's own check at open: twice our limit or more
        raise invalid(f"image too large: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        # Truncated or malformed data, or a format the bytes only pretend to be.
        raise invalid(f"not a valid {fmt} image ({exc.__class__.__name__})") from None


def _kept(info: dict[str, Any]) -> dict[str, Any]:
    return {k: info[k] for k in _KEPT_INFO if k in info and info[k] is not None}


def _save_stripped(image: Image.Image, fmt: str, target: Path, frames: int) -> None:
    options: dict[str, Any] = {"format": fmt}
    if fmt == "JPEG":
        options.update(quality=JPEG_QUALITY, optimize=True)
    elif fmt == "WEBP":
        options.update(lossless=True)
    if frames == 1:
        clean = image.copy()  # pixels only; info is reset below, so no EXIF/XMP/comment can follow
        kept = _kept(image.info)
        clean.info = {}
        if fmt == "GIF" and "transparency" in kept:
            options["transparency"] = kept["transparency"]
        if "icc_profile" in kept:
            options["icc_profile"] = kept["icc_profile"]
        _save(clean, target, options)
        return
    sequence = []
    durations = []
    for frame in ImageSequence.Iterator(image):
        copy = frame.copy()
        durations.append(frame.info.get("duration", 100))
        copy.info = {}
        sequence.append(copy)
    options.update(save_all=True, append_images=sequence[1:], duration=durations,
                   loop=image.info.get("loop", 0))
    _save(sequence[0], target, options)


def _save(image: Image.Image, target: Path, options: dict[str, Any]) -> None:
    with target.open("xb") as fh:
        image.save(fh, **options)
        fh.flush()
        os.fsync(fh.fileno())


def _first_frame(image: Image.Image) -> Image.Image:
    image.seek(0)
    return image.copy()


def _save_thumbnail(image: Image.Image, target: Path, size: int) -> None:
    thumb = image.copy()
    thumb.info = {}
    if thumb.mode not in ("RGB", "RGBA"):
        thumb = thumb.convert("RGBA" if "transparency" in image.info or thumb.mode in ("LA", "PA", "P") else "RGB")
    thumb.thumbnail((size, size))
    _save(thumb, target, {"format": "WEBP", "quality": THUMBNAIL_QUALITY})
