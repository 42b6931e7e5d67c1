"""Image files -> invocation bodies that fit the 6 MB payload limit (client side, no torch).

Files under the limit go as they are, with a content type read from their first bytes (a
misnamed .jpg that is a PNG still says image/png). Larger ones are shrunk here with Pillow:
turned upright by their EXIF orientation (which re-encoding would drop), then re-encoded as
JPEG at smaller sizes until one fits. The model looks at 224 pixels, so a few thousand
pixels a side loses nothing it would have used.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from dogbreed.regular_files import read_regular
from dogbreed.serving.limits import MAX_PAYLOAD_BYTES

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"})
_START_SIDE = 4096
_MIN_SIDE = 256
# The largest file predict reads to shrink: far above any photo, far below memory trouble.
# Checked by stat before a byte is read (a 3 GiB sparse .jpg once took 3.2 GB of memory).
MAX_FILE_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Upload:
    body: bytes
    content_type: str
    original_bytes: int  # the file's size; differs from len(body) when it was shrunk

    @property
    def shrunk(self) -> bool:
        return self.original_bytes != len(self.body)


def sniff_content_type(head: bytes) -> str:
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return "application/x-image"  # the server works out the format itself


def shrink_to_fit(data: bytes, limit: int = MAX_PAYLOAD_BYTES) -> bytes:
    """Re-encode as JPEG, halving the size budget until it fits. ValueError if it never does."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as opened:
        opened.draft("RGB", (_START_SIDE, _START_SIDE))  # JPEG: decode at a reduced scale, fast
        image = ImageOps.exif_transpose(opened).convert("RGB")
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


def prepare(path: Path, limit: int = MAX_PAYLOAD_BYTES, max_file_bytes: int = MAX_FILE_BYTES) -> Upload:
    """The body to send for one image file. FileRefusedError for what is not a regular file
    within max_file_bytes (checked before reading), ValueError if unshrinkable."""
    data = read_regular(path, max_file_bytes, "predict's limit of")
    if len(data) <= limit:
        return Upload(data, sniff_content_type(data[:16]), len(data))
    from PIL import Image

    try:
        return Upload(shrink_to_fit(data, limit), "image/jpeg", len(data))
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:  # "cannot identify image file" is an OSError
        raise ValueError(
            f"{len(data):,} bytes, over the {limit:,}-byte limit, and not an image Pillow can shrink ({exc})"
        ) from None
