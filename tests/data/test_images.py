"""Image checks on real and deliberately broken files: each problem named, good odd modes kept."""

from __future__ import annotations

import io
import os
import struct
import zlib

import pytest
from PIL import Image, ImageFile

from dogbreed.data.images import ImageLimits, check_image, to_rgb
from tests.data.conftest import image_bytes, photos, sha256

# Pillow warns about the same images we refuse; the module filters it, pytest resets filters per test.
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")

LIMITS = ImageLimits(min_side=32, max_pixels=89_478_485)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height, followed by one row of pixels at most:
    a few dozen bytes that would need gigabytes once decoded."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_real_photo_passes_with_its_hash(tmp_path):
    photo = photos()[0]
    check = check_image(photo, LIMITS)
    assert check.problem is None
    assert check.sha256 == sha256(photo.read_bytes()) == check.stored_sha256
    assert check.stored == photo and (check.width, check.height) == (224, 224)


@pytest.mark.parametrize(
    ("name", "make", "problem"),
    [
        ("truncated.jpg", lambda: photos()[0].read_bytes()[: len(photos()[0].read_bytes()) // 2], "truncated"),
        ("random.jpg", lambda: os.urandom(4096), "not an image"),
        ("empty.jpg", lambda: b"", "empty file"),
        ("tiny.png", lambda: image_bytes(size=(16, 40)), "too small: 16x40"),
        ("bomb.png", lambda: _png_header_only(100_000, 100_000), "decompression bomb"),
        ("bomb.png", lambda: _png_header_only(100_000, 100_000), "a real photo that large: shrink it"),
        ("big-header.png", lambda: _png_header_only(10_000, 10_000), "too many pixels: 10000x10000"),
        ("big-header.png", lambda: _png_header_only(10_000, 10_000), "shrink it, or raise data.max_pixels"),
        ("notes.txt", lambda: b"these are not the photos you are looking for", "not an image"),
    ],
)
def test_broken_files_are_reported_not_raised(tmp_path, name, make, problem):
    check = check_image(_write(tmp_path, name, make()), LIMITS)
    assert check.problem is not None and problem in check.problem
    assert check.stored is None
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_pixel_limit_is_checked_before_decoding(tmp_path):
    # 10000x10000 with no pixel data: decoding would fail as corrupt, so "too many pixels"
    # proves the refusal came from the header alone. A real photo obeys a tight limit too.
    assert "before decoding" in check_image(_write(tmp_path, "h.png", _png_header_only(10_000, 10_000)), LIMITS).problem
    tight = ImageLimits(min_side=1, max_pixels=224 * 224 - 1)
    assert "too many pixels" in check_image(photos()[0], tight).problem


@pytest.mark.parametrize(
    ("mode", "fmt", "extra"),
    [("L", "PNG", {}), ("CMYK", "JPEG", {}), ("P", "PNG", {}), ("RGBA", "PNG", {}), ("LA", "PNG", {}), ("I;16", "PNG", {})],
)
def test_odd_modes_are_usable(tmp_path, mode, fmt, extra):
    path = _write(tmp_path, f"odd.{fmt.lower()}", image_bytes(mode, fmt=fmt, **extra))
    check = check_image(path, LIMITS)
    assert check.problem is None, check.problem
    assert check.mode == mode
    with Image.open(path) as image:
        assert to_rgb(image).mode == "RGB"


def test_transparent_areas_become_white():
    clear = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert to_rgb(clear).getpixel((0, 0)) == (255, 255, 255)
    palette = Image.new("P", (4, 4), 0)
    palette.info["transparency"] = 0
    assert to_rgb(palette).getpixel((0, 0)) == (255, 255, 255)


def test_resized_copy_leaves_the_original_untouched(tmp_path):
    original = _write(tmp_path, "big.jpg", image_bytes(size=(640, 480), fmt="JPEG", quality=95))
    before = sha256(original.read_bytes())
    check = check_image(original, ImageLimits(32, 89_478_485, resize=128), resized_dir=tmp_path / "resized")
    assert check.problem is None
    assert sha256(original.read_bytes()) == before and check.sha256 == before
    assert check.stored != original and check.stored.is_relative_to(tmp_path / "resized")
    with Image.open(check.stored) as copy:
        assert copy.size == (171, 128) and copy.format == "JPEG" and copy.mode == "RGB"
    assert check.stored_sha256 == sha256(check.stored.read_bytes()) != before
    assert check.stored_size == check.stored.stat().st_size < original.stat().st_size
    # Same input, same copy: the second check reuses it.
    again = check_image(original, ImageLimits(32, 89_478_485, resize=128), resized_dir=tmp_path / "resized")
    assert again.stored == check.stored and again.stored_sha256 == check.stored_sha256


def test_resize_follows_exif_orientation_and_skips_small_images(tmp_path):
    image = Image.open(io.BytesIO(image_bytes(size=(400, 200), fmt="JPEG")))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° when displayed: a portrait photo stored sideways
    rotated = tmp_path / "rotated.jpg"
    image.save(rotated, exif=exif)
    check = check_image(rotated, ImageLimits(32, 89_478_485, resize=100), resized_dir=tmp_path / "r")
    with Image.open(check.stored) as copy:
        assert copy.size == (100, 200)
    small = photos()[0]  # 224x224, already below the 256 target: stored as is
    check = check_image(small, ImageLimits(32, 89_478_485, resize=256), resized_dir=tmp_path / "r")
    assert check.stored == small


def test_resized_copy_has_the_pixels_training_sees(tmp_path):
    """Ingest's stored copy converts a 16-bit PNG as training does: clipping turned it white."""
    import numpy as np

    from dogbreed.source_dir.breedkit.pixels import to_rgb as training_rgb

    original = tmp_path / "gray16.png"
    ramp = np.tile(np.linspace(0, 65535, 256, dtype=np.uint16), (200, 1))
    Image.fromarray(ramp).save(original)
    with Image.open(original) as opened:
        assert opened.mode.startswith("I")
        expected = np.asarray(training_rgb(opened).resize((164, 128), Image.Resampling.LANCZOS, reducing_gap=3.0))
    check = check_image(original, ImageLimits(32, 89_478_485, resize=128), resized_dir=tmp_path / "resized")
    assert check.problem is None and check.stored != original
    with Image.open(check.stored) as stored:
        assert np.array_equal(np.asarray(stored.convert("RGB")), expected)


def test_a_heic_photo_is_named_with_what_to_do(tmp_path):
    """An iPhone photo: Pillow has no HEIF decoder here; "not an image" would be wrong."""
    heic = _write(tmp_path, "IMG_0001.HEIC", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200))
    assert check_image(heic, LIMITS).problem == "a HEIC/HEIF photo, which Pillow here cannot decode; convert it to JPEG or PNG"
    junk = _write(tmp_path, "notes.jpg", b"shopping list\n")
    assert check_image(junk, LIMITS).problem == "not an image (no known image format)"
