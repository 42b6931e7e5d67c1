"""Request bodies for the tests: real photos re-encoded, and deliberately bad ones."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BEAGLE = EXAMPLES / "predict" / "Beagle_01141.jpg"
COLLIE = EXAMPLES / "predict" / "Collie_03797.jpg"


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def photo(path: Path = BEAGLE) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def variants(path: Path = BEAGLE) -> dict[str, tuple[bytes, str]]:
    """The same photo as JPEG, PNG, grayscale, RGBA, CMYK JPEG and palette PNG."""
    rgb = photo(path)
    return {
        "jpeg": (path.read_bytes(), "image/jpeg"),
        "png": (encode(rgb, "PNG"), "image/png"),
        "grayscale": (encode(rgb.convert("L"), "JPEG", quality=95), "image/jpeg"),
        "rgba": (encode(rgb.convert("RGBA"), "PNG"), "image/png"),
        "cmyk": (encode(rgb.convert("CMYK"), "JPEG", quality=95), "image/jpeg"),
        "palette": (encode(rgb.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"), "application/x-image"),
    }


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A few dozen bytes of PNG whose header claims width x height pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b"")


def rotated_with_exif(path: Path = BEAGLE) -> bytes:
    """The photo's pixels turned 90 degrees, with the EXIF orientation (6) that turns them back."""
    turned = photo(path).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    return encode(turned, "JPEG", quality=95, exif=exif.tobytes())
