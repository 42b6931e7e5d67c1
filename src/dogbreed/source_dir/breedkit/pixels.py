"""Any photo Pillow opens -> the upright 8-bit RGB the model sees (Pillow and numpy only).

One function for every place a photo becomes pixels: training and serving (through
presets), ingest's checks and resized copies, and the client that converts a photo the
endpoint does not decode (TIFF, AVIF, ICO) before sending it. Kept free of torch so the
CLI can import it; two copies of this logic once disagreed (a 16-bit PNG was white in
ingest's resized copy and grey in training).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

# The formats the endpoint's handler decodes (inference.py's IMAGE_FORMATS): the common photo
# formats, none of the exotic decoders. The client converts any other photo to PNG first.
SERVED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")


def to_rgb(image: Image.Image) -> Image.Image:
    """Upright RGB: EXIF orientation applied, alpha composited on white, any mode converted."""
    image = ImageOps.exif_transpose(image)
    if image.mode == "P":
        # A palette image may carry transparency in its info; RGBA keeps it for compositing.
        image = image.convert("RGBA")
    if image.mode in ("LA", "PA"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    if image.mode == "F":
        return _float_to_l(image).convert("RGB")
    if image.mode != "RGB":
        # L, 1, I, I;16, CMYK, YCbCr, LAB, HSV: Pillow's converters handle each.
        if image.mode.startswith("I"):
            # 16/32-bit grayscale: scale into 8 bits instead of clipping everything to white.
            image = image.point(lambda value: value * (255.0 / 65535.0)).convert("L")
        image = image.convert("RGB")
    return image


def _float_to_l(image: Image.Image) -> Image.Image:
    """A float image has no fixed range: 0-1 (the usual one), 0-255 or 0-65535, read from its
    brightest pixel. A fixed 16-bit scale made a 0-1 or 0-255 float TIFF all black."""
    values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    brightest = float(values.max(initial=0.0))
    scale = 255.0 if brightest <= 1.0 else 1.0 if brightest <= 255.0 else 255.0 / 65535.0
    return Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8), "L")


# ISO-BMFF brands of HEIF photos (an iPhone's .heic): Pillow has no decoder for them.
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}


def undecodable_format(head: bytes) -> str | None:
    """The name of a photo format Pillow here has no decoder for, told from the file's first
    16 bytes, so its refusal can say "convert it" rather than "not an image"; else None."""
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "HEIC/HEIF"
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        return "JPEG XL"
    return None
