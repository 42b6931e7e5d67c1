"""breedkit.presets: any photo Pillow opens becomes upright RGB, then the shared transforms."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image


@pytest.mark.parametrize("mode", ["L", "1", "P", "CMYK", "RGBA", "LA", "I;16", "I", "F", "YCbCr", "RGB"])
def test_every_mode_becomes_rgb(breedkit, mode):
    from breedkit.presets import eval_transform, to_rgb

    image = Image.new(mode, (40, 30))
    rgb = to_rgb(image)
    assert rgb.mode == "RGB" and rgb.size == (40, 30)
    assert eval_transform()(rgb).shape == (3, 224, 224)


def test_transparent_pixels_are_composited_on_white(breedkit):
    from breedkit.presets import to_rgb

    image = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    image.putpixel((0, 0), (255, 0, 0, 255))
    rgb = to_rgb(image)
    assert rgb.getpixel((1, 1)) == (255, 255, 255)
    assert rgb.getpixel((0, 0)) == (255, 0, 0)
    palette = Image.new("P", (2, 2), 0)
    palette.putpalette([0, 0, 0, 10, 20, 30])
    palette.info["transparency"] = 0
    assert to_rgb(palette).getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied(breedkit):
    """A phone photo stored sideways with Orientation=6 (rotate 90 degrees clockwise)."""
    from breedkit.presets import to_rgb

    image = Image.new("RGB", (60, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    with Image.open(io.BytesIO(buffer.getvalue())) as stored:
        assert stored.size == (60, 20)
        assert to_rgb(stored).size == (20, 60)


def test_16_bit_grayscale_keeps_its_range(breedkit):
    from breedkit.presets import to_rgb

    image = Image.new("I;16", (2, 1))
    image.putpixel((0, 0), 32768)
    assert to_rgb(image).getpixel((0, 0))[0] == pytest.approx(127, abs=1)


def test_presets_normalise_with_imagenet_statistics(breedkit, dogs_dir):
    from breedkit.presets import IMAGENET_MEAN, IMAGENET_STD, eval_transform, train_transform

    photo = next(iter(sorted(dogs_dir.glob("*/*.jpg"))))
    with Image.open(photo) as image:
        rgb = image.convert("RGB")
    evaluated = eval_transform(resize=128, crop=112)(rgb)
    assert evaluated.shape == (3, 112, 112)
    assert torch.equal(evaluated, eval_transform(resize=128, crop=112)(rgb))  # deterministic
    white = eval_transform(resize=8, crop=8)(Image.new("RGB", (8, 8), (255, 255, 255)))
    expected = [(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    assert white[:, 0, 0].tolist() == pytest.approx(expected, rel=1e-5)
    torch.manual_seed(0)
    a = train_transform(crop=96)(rgb)
    torch.manual_seed(0)
    assert a.shape == (3, 96, 96) and torch.equal(a, train_transform(crop=96)(rgb))  # seeded


def test_normalize_batch_gives_the_presets_own_bits(breedkit, dogs_dir):
    """The batched normalisation extraction uses must equal ToTensor then Normalize per image
    bit for bit, channel by channel, on photos whose height and width differ (a transposed or
    misaligned statistics row would swap channels or pixels)."""
    from breedkit.presets import IMAGENET_MEAN, IMAGENET_STD, normalize_batch, to_uint8_hwc
    from torchvision import transforms

    per_image = transforms.Compose([transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    photos = sorted(dogs_dir.glob("*/*.jpg"))[:3]
    images = []
    for photo in photos:
        with Image.open(photo) as image:
            images.append(image.convert("RGB").resize((40, 24)))
    got = normalize_batch(torch.stack([to_uint8_hwc(image) for image in images]))
    expected = torch.stack([per_image(image) for image in images])
    assert got.shape == (3, 3, 24, 40)
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("size", [(224, 224), (500, 375), (375, 500), (1600, 100), (100, 1600)])
def test_the_eval_preset_is_torchvisions_own_for_any_photo_within_16_to_1(breedkit, dogs_dir, size):
    from breedkit.presets import eval_transform
    from torchvision import transforms

    photo = Image.open(sorted(dogs_dir.rglob("*.jpg"))[0]).convert("RGB").resize(size)
    plain = transforms.Compose(
        [
            transforms.Resize(256, antialias=True),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    assert torch.equal(eval_transform()(photo), plain(photo))


@pytest.mark.parametrize(("size", "kept"), [((100_000, 1), (16, 1)), ((1, 40_000), (1, 16)), ((3300, 200), (3200, 200))])
def test_a_strip_is_cut_to_its_centre_before_the_resize(breedkit, size, kept):
    from breedkit.presets import BoundedAspect, eval_geometry

    strip = Image.new("RGB", size)
    width, height = size
    strip.putpixel((width // 2, height // 2), (255, 0, 0))  # the centre, which the cut must keep centred
    cut = BoundedAspect()(strip)
    assert cut.size == kept
    assert cut.getpixel((kept[0] // 2, kept[1] // 2)) == (255, 0, 0)
    assert eval_geometry()(strip).size == (224, 224)


@pytest.mark.parametrize("brightest", [1.0, 255.0, 65535.0])
def test_float_images_keep_their_picture_whatever_their_range(breedkit, brightest):
    """A float TIFF ('F') holds 0-1, 0-255 or 0-65535; a fixed 16-bit scale made the first two black."""
    from breedkit.presets import to_rgb

    image = Image.new("F", (3, 1))
    image.putpixel((1, 0), brightest / 2)
    image.putpixel((2, 0), brightest)
    assert [to_rgb(image).getpixel((x, 0))[0] for x in range(3)] == [0, pytest.approx(128, abs=1), 255]
