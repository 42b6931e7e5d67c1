"""Check one photo: it decodes completely, is a sane size, and converts to RGB.

Pillow only reads the header on open, so the pixel count is checked before any decoding
(a decompression bomb is refused in microseconds), then `.load()` decodes every byte:
`ImageFile.LOAD_TRUNCATED_IMAGES` stays False, so a truncated file is an error, not a
grey half-image. The optional resized copy is written beside, never over, the original.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageFile, UnidentifiedImageError

from dogbreed.atomic_files import replacing
from dogbreed.regular_files import FileRefusedError, open_regular, size_problem

# The conversion training and serving use (torch-free), so a stored copy has their pixels.
from dogbreed.source_dir.breedkit.pixels import to_rgb, undecodable_format

# We enforce data.max_pixels ourselves and report it per file; Pillow's own warning for the
# same images would only repeat it on stderr.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


MAX_BYTES_KEY = "data.max_image_bytes"  # the config key of ImageLimits.max_bytes, named in refusals


@dataclass(frozen=True)
class ImageLimits:
    min_side: int
    max_pixels: int
    resize: int | None = None  # short side of the stored copy; None stores the original
    max_bytes: int | None = None  # larger files are refused before a byte is read


@dataclass(frozen=True)
class ImageCheck:
    problem: str | None  # None when the image is usable
    size: int = 0  # bytes of the original
    sha256: str | None = None  # of the original bytes (duplicates are found by it)
    width: int = 0
    height: int = 0
    mode: str = ""
    stored: Path | None = None  # the file to store: the original, or its resized copy
    stored_size: int = 0
    stored_sha256: str | None = None


def check_image(path: Path, limits: ImageLimits, resized_dir: Path | None = None) -> ImageCheck:
    """Never raises for a bad file: the problem is in the answer, so one bad photo never stops a run."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Someone in this process relaxed Pillow globally; truncated photos would pass as valid.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True; image checks need it False")
    try:
        # A FIFO, a link to /dev/zero or a huge file named .jpg: a problem, never a hang.
        handle = open_regular(path, limits.max_bytes, MAX_BYTES_KEY)
    except FileRefusedError as exc:
        return ImageCheck(problem=exc.problem)
    with handle:
        return _check_file(handle, path, limits, resized_dir)


def _check_file(handle, path: Path, limits: ImageLimits, resized_dir: Path | None) -> ImageCheck:
    try:
        size, digest = _size_and_sha256(handle)
        handle.seek(0)
    except OSError as exc:
        return ImageCheck(problem=f"unreadable: {exc.strerror or exc}")
    if size == 0:
        return ImageCheck(problem="empty file", size=0, sha256=digest)
    return _open_and_check(handle, path, size, digest, limits, resized_dir)


def check_image_object(size: int, read: Callable[[int], bytes], name: str, limits: ImageLimits) -> ImageCheck:
    """check_image for a photo that is no local file (an S3 object, ingested in place): `size`
    is what its listing says, `read(max_bytes)` fetches it (FileRefusedError past max_bytes).
    The size limit is the files' (data.max_image_bytes), checked before a byte is fetched;
    then the same checks, never a resized copy; `stored` is its name, since nothing is written."""
    problem = size_problem(size, limits.max_bytes, MAX_BYTES_KEY)
    if problem:
        return ImageCheck(problem=problem, size=size)
    try:
        data = read(limits.max_bytes if limits.max_bytes is not None else size)
    except FileRefusedError as exc:  # it grew since the listing, or says so in ContentLength
        return ImageCheck(problem=exc.problem)
    return check_image_bytes(data, name, limits)


def check_image_bytes(data: bytes, name: str, limits: ImageLimits) -> ImageCheck:
    """The checks of check_image on bytes in memory (limits.max_bytes included); no resized copy."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True; image checks need it False")
    size, digest = len(data), hashlib.sha256(data).hexdigest()
    problem = size_problem(size, limits.max_bytes, MAX_BYTES_KEY)
    if problem:
        return ImageCheck(problem=problem, size=size, sha256=digest)
    if size == 0:
        return ImageCheck(problem="empty file", size=0, sha256=digest)
    limits = ImageLimits(limits.min_side, limits.max_pixels)
    return _open_and_check(io.BytesIO(data), Path(name), size, digest, limits, None)


def _open_and_check(
    stream: BinaryIO, path: Path, size: int, digest: str, limits: ImageLimits, resized_dir: Path | None
) -> ImageCheck:
    """Open the header (the one place a file becomes a problem before decoding), then check."""
    try:
        image = Image.open(stream)
    except Image.DecompressionBombError as exc:
        problem = f"decompression bomb refused before decoding ({exc}); a real photo that large: shrink it"
        return ImageCheck(problem=problem, size=size, sha256=digest)
    except UnidentifiedImageError:
        stream.seek(0)
        known = undecodable_format(stream.read(16))
        if known:
            problem = f"a {known} photo, which Pillow here cannot decode; convert it to JPEG or PNG"
            return ImageCheck(problem=problem, size=size, sha256=digest)
        return ImageCheck(problem="not an image (no known image format)", size=size, sha256=digest)
    except (OSError, SyntaxError, ValueError) as exc:
        return ImageCheck(problem=f"corrupt header: {exc}", size=size, sha256=digest)
    with image:
        return _check_opened(image, path, size, digest, limits, resized_dir)


def _size_and_sha256(handle) -> tuple[int, str]:
    # Streamed, so a huge file that is not a photo never sits in memory whole.
    digest, size = hashlib.sha256(), 0
    while chunk := handle.read(1 << 20):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def _check_opened(
    image: Image.Image, path: Path, size: int, digest: str, limits: ImageLimits, resized_dir: Path | None
) -> ImageCheck:
    width, height = image.size
    found = dict(size=size, sha256=digest, width=width, height=height, mode=image.mode)
    if width * height > limits.max_pixels:
        return ImageCheck(
            problem=f"too many pixels: {width}x{height} > data.max_pixels {limits.max_pixels} "
            "(decompression bomb?), refused before decoding; a real photo that large: shrink it, "
            "or raise data.max_pixels",
            **found,
        )
    try:
        image.load()
        rgb = to_rgb(image)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        return ImageCheck(problem=f"corrupt or truncated: {exc}", **found)
    if min(width, height) < limits.min_side:
        return ImageCheck(problem=f"too small: {width}x{height}, short side < data.min_side {limits.min_side}", **found)
    if limits.resize is None or min(width, height) <= limits.resize or resized_dir is None:
        return ImageCheck(problem=None, stored=path, stored_size=size, stored_sha256=digest, **found)
    try:
        stored = _resized_copy(image, rgb, path, digest, limits.resize, resized_dir)
    except (OSError, ValueError, KeyError) as exc:
        return ImageCheck(problem=f"cannot write resized copy: {exc}", **found)
    copy = stored.read_bytes()
    return ImageCheck(problem=None, stored=stored, stored_size=len(copy), stored_sha256=hashlib.sha256(copy).hexdigest(), **found)


def _resized_copy(image: Image.Image, rgb: Image.Image, path: Path, digest: str, short: int, folder: Path) -> Path:
    """Resized copy keyed by the original's sha256 and size, so a re-ingest reuses it."""
    suffix = path.suffix.lower() or ".jpg"
    target = folder / str(short) / digest[:2] / f"{digest}{suffix}"
    if target.is_file():
        return target
    # `rgb` is upright: to_rgb turned it by its EXIF orientation, which saving would drop.
    width, height = rgb.size
    scale = short / min(width, height)
    resized = rgb.resize(
        (max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.LANCZOS, reducing_gap=3.0
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    fmt = Image.registered_extensions().get(suffix) or image.format or "JPEG"
    with replacing(target) as tmp:
        resized.save(tmp, format=fmt, quality=90)
    return target
