"""Image files -> invocation bodies that fit a payload limit (client side, no torch).

The one place a local photo becomes the request sent for it: `predict` sends this body to an
endpoint (limit: the endpoint's 6 MB), and `transform` hands the same body to the handler
in-process or uploads it for a SageMaker job (limit: transform.max_payload_mb). With equal
limits both send the same bytes for the same photo, so both get the same answer.

Files within the limit, and within the pixels the handler takes, in a format it decodes
(JPEG, PNG, WebP, GIF, BMP), go as they are, with a content type read from their first bytes
(a misnamed .jpg that is a PNG still says image/png). A photo in another format Pillow reads
here (TIFF, AVIF, ICO: ingest takes them, so a model is trained on them) becomes a lossless
PNG of the pixels training sees (pixels.to_rgb), so the answer is the one training's view of
it gets. Larger ones are shrunk here with Pillow: the same pixels, then re-encoded as JPEG
at smaller sizes until one fits. The model looks at 224 pixels, so a few thousand pixels a
side loses nothing it would have used. What cannot be read or shrunk (junk, a decompression
bomb) is a ValueError: its error row.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from dogbreed.regular_files import read_regular
from dogbreed.serving.limits import MAX_PAYLOAD_BYTES

# What an endpoint decodes as it is: the only photos an s3:// prefix may hold for a SageMaker job.
SERVED_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".gif"})
# The photos a folder is searched for (any case): those, what the client converts first, and
# HEIC, which it cannot (an error row saying so, not a photo silently left out).
IMAGE_SUFFIXES = SERVED_SUFFIXES | {".tif", ".tiff", ".avif", ".heic", ".heif"}
_START_SIDE = 4096
_MIN_SIDE = 256
# The largest file predict reads to shrink: far above any photo, far below memory trouble.
# Checked by stat before a byte is read (a 3 GiB sparse .jpg once took 3.2 GB of memory).
# The default of data.max_image_bytes, which the CLI passes.
MAX_FILE_BYTES = 64 * 2**20
# The most pixels the handler decodes (inference.py's MAX_IMAGE_PIXELS, which is Pillow's
# bomb threshold; not imported, since inference.py imports torch). A photo over it would be
# refused ("downscale it before sending"), so it is shrunk here like one over the byte limit.
MAX_PIXELS = 89_478_485


@dataclass(frozen=True)
class Upload:
    body: bytes
    content_type: str
    original_bytes: int  # the file's size
    shrunk: bool = False  # re-encoded to fit: body is a JPEG, not the file's bytes


def sniff_content_type(head: bytes) -> str:
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return "application/x-image"  # the server works out the format itself


@cache
def _quiet_pillow() -> None:
    """Once, when Pillow is first needed (it is imported only then, to keep predict light)."""
    from PIL import Image

    # Over MAX_PIXELS a photo is shrunk, and past Pillow's limit it is that photo's error row:
    # Pillow's own two-line DecompressionBombWarning on stderr would only repeat it.
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def _needs_rewrite(data: bytes) -> tuple[bool, bool]:
    """(too many pixels for the handler, a format it does not decode), from the header alone.
    What Pillow cannot open goes as it is: the handler's error for it is the one to show;
    but a photo format with no decoder here (HEIC) is a ValueError saying to convert it."""
    from PIL import Image

    from dogbreed.source_dir.breedkit.pixels import SERVED_FORMATS, undecodable_format

    _quiet_pillow()
    try:
        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
            foreign = opened.format not in SERVED_FORMATS
    except Image.DecompressionBombError:
        return True, False  # past Pillow's limit: shrink_to_fit says why it cannot be sent
    except (OSError, SyntaxError, ValueError):
        known = undecodable_format(data[:16])
        if known:  # the endpoint would only say "not a readable image"
            raise ValueError(f"a {known} photo, which Pillow here cannot decode; convert it to JPEG or PNG") from None
        return False, False
    return width * height > MAX_PIXELS, foreign


def _upright_rgb(data: bytes, draft_side: int | None = None):
    """The photo's pixels as training and the handler see them (pixels.to_rgb), decoded here."""
    from PIL import Image

    from dogbreed.source_dir.breedkit.pixels import to_rgb

    with Image.open(io.BytesIO(data)) as opened:
        if draft_side:
            opened.draft("RGB", (draft_side, draft_side))  # JPEG: decode at a reduced scale, fast
        return to_rgb(opened)


def as_png(data: bytes) -> bytes:
    """A photo the handler does not decode (TIFF, AVIF, ICO), as a lossless PNG of its pixels."""
    out = io.BytesIO()
    _upright_rgb(data).save(out, "PNG")
    return out.getvalue()


def shrink_to_fit(data: bytes, limit: int = MAX_PAYLOAD_BYTES) -> bytes:
    """Re-encode as JPEG, halving the size budget until it fits. ValueError if it never does."""
    from PIL import Image

    _quiet_pillow()
    # to_rgb, not convert("RGB"): a large 16-bit PNG was clipped to white, transparency black.
    image = _upright_rgb(data, _START_SIDE)
    side = min(max(image.size), _START_SIDE)
    while side >= _MIN_SIDE:
        copy = image.copy()
        copy.thumbnail((side, side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        copy.save(out, "JPEG", quality=90)
        if out.tell() <= limit:
            return out.getvalue()
        side = int(side * 0.7)
    raise ValueError(f"could not shrink the image under {limit:,} bytes")


def fit(data: bytes, limit: int = MAX_PAYLOAD_BYTES) -> Upload:
    """The body to send for an image's bytes: as they are when they fit, else shrunk.
    ValueError for what must be shrunk and cannot be."""
    too_big = len(data) > limit
    too_many_pixels, foreign = _needs_rewrite(data)
    if not too_big and not too_many_pixels and not foreign:
        return Upload(data, sniff_content_type(data[:16]), len(data))
    from PIL import Image

    try:
        if foreign and not too_many_pixels:
            png = as_png(data)
            if len(png) <= limit:
                return Upload(png, "image/png", len(data), shrunk=True)
        return Upload(shrink_to_fit(data, limit), "image/jpeg", len(data), shrunk=True)
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:  # "cannot identify image file" is an OSError
        if not (too_big or too_many_pixels):
            raise ValueError(f"a format the endpoint does not decode, and Pillow could not convert it ({exc})") from None
        why = f"{len(data):,} bytes, over the {limit:,}-byte limit" if too_big else f"over {MAX_PIXELS:,} pixels"
        raise ValueError(f"{why}, and not an image Pillow can shrink ({exc})") from None


def prepare(
    path: Path, limit: int = MAX_PAYLOAD_BYTES, max_file_bytes: int = MAX_FILE_BYTES, limit_name: str = "data.max_image_bytes"
) -> Upload:
    """The body to send for one image file (see fit). FileRefusedError for what is not a
    regular file within max_file_bytes (checked before reading), ValueError if unshrinkable."""
    return fit(read_regular(path, max_file_bytes, limit_name), limit)
