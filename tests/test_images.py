"""Image files to uint8 tensors: every mode Pillow reads lands in 0..255 the right way up, or is refused by name.

Each image is written to a real file in a format that keeps its mode, and read back through
the decoder the image-folder dataset uses (ImageFiles in a DataLoader), as a run reads it.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from runner.data.images import decode_images, to_8bit
from runner.io.errors import RunnerError


def decode(path, shape=(3, 4, 4)):
    return decode_images([(str(path), 0)], shape, workers=0)[0]


def solid(mode, value, fmt):
    return lambda path: Image.new(mode, (4, 4), value).save(path.with_suffix(fmt)) or path.with_suffix(fmt)


def sixteen_bit(value):
    def make(path):
        Image.fromarray(np.full((4, 4), value, dtype=np.uint16)).save(path.with_suffix(".png"))
        assert Image.open(path.with_suffix(".png")).mode == "I;16"  # the mode under test, as Pillow reads it
        return path.with_suffix(".png")

    return make


def palette_with_transparency(path):
    """Top half palette entry 0 (red, fully transparent), bottom half entry 1 (grey 100, opaque)."""
    img = Image.new("P", (4, 4), 1)
    img.putpalette([255, 0, 0, 100, 100, 100] + [0] * 762)
    img.paste(0, (0, 0, 4, 2))
    img.save(path.with_suffix(".png"), transparency=0)
    assert "transparency" in Image.open(path.with_suffix(".png")).info
    return path.with_suffix(".png")


def half_transparent_rgba(path):
    pixels = np.zeros((4, 4, 4), dtype=np.uint8)
    pixels[...] = (200, 100, 50, 255)
    pixels[:2, :, 3] = 0  # top half fully transparent: its colour must not reach the model
    Image.fromarray(pixels, "RGBA").save(path.with_suffix(".png"))
    return path.with_suffix(".png")


def one_bit(path):
    img = Image.new("1", (4, 4), 0)
    img.paste(1, (0, 2, 4, 4))
    img.save(path.with_suffix(".png"))
    return path.with_suffix(".png")


# (id, writer, expected top rows (R, G, B), expected bottom rows): what each mode must become in RGB
MODES = [
    ("L", solid("L", 100, ".png"), (100, 100, 100), (100, 100, 100)),
    ("I;16 mid-grey", sixteen_bit(100 * 257), (100, 100, 100), (100, 100, 100)),  # 16-bit 25700 is 8-bit 100
    ("I;16 full range", sixteen_bit(65535), (255, 255, 255), (255, 255, 255)),
    ("1", one_bit, (0, 0, 0), (255, 255, 255)),
    ("P with transparency", palette_with_transparency, (0, 0, 0), (100, 100, 100)),
    ("LA", solid("LA", (200, 128), ".png"), (100, 100, 100), (100, 100, 100)),  # 200 at alpha 128/255 over black
    ("RGBA", half_transparent_rgba, (0, 0, 0), (200, 100, 50)),
    ("CMYK", solid("CMYK", (0, 0, 0, 155), ".tiff"), (100, 100, 100), (100, 100, 100)),  # K=155 leaves 255-155
    ("YCbCr", solid("YCbCr", (100, 128, 128), ".tiff"), (100, 100, 100), (100, 100, 100)),  # no chroma: grey Y
]


@pytest.mark.parametrize(("write", "top", "bottom"), [m[1:] for m in MODES], ids=[m[0] for m in MODES])
def test_every_mode_lands_in_the_right_8bit_range(tmp_path, write, top, bottom):
    x = decode(write(tmp_path / "img"))
    assert x.dtype == torch.uint8 and x.shape == (3, 4, 4)
    assert x[:, :2].reshape(3, -1).T.tolist() == [list(top)] * 8
    assert x[:, 2:].reshape(3, -1).T.tolist() == [list(bottom)] * 8


def test_one_channel_runs_get_grey_levels_and_16_bit_keeps_its_high_byte(tmp_path):
    ramp = np.arange(16, dtype=np.uint16).reshape(4, 4) * 4096 + 255  # 255, 4351, ... 61695
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    x = decode(tmp_path / "ramp.png", shape=(1, 4, 4))
    assert x.flatten().tolist() == [v >> 8 for v in ramp.flatten().tolist()]  # 0, 16, 32, ... 240: not all 255


@pytest.mark.parametrize(
    ("mode", "value", "phrase"),
    [("I", 1000, "32-bit integer pixels (mode I)"), ("F", 0.5, "floating-point pixels (mode F)")],
)
def test_modes_without_a_standard_range_are_refused_by_name(tmp_path, mode, value, phrase):
    Image.new(mode, (4, 4), value).save(tmp_path / "depth.tiff")
    assert Image.open(tmp_path / "depth.tiff").mode == mode
    with pytest.raises(RunnerError) as err:
        decode(tmp_path / "depth.tiff")
    assert "depth.tiff" in str(err.value) and phrase in str(err.value)


def test_exif_orientation_is_applied(tmp_path):
    """A camera's portrait photo: stored landscape (white left half) with EXIF orientation 6 (rotate 90 clockwise)."""
    pixels = np.zeros((8, 16, 3), dtype=np.uint8)
    pixels[:, :8] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(tmp_path / "photo.jpg", exif=exif, quality=95)
    x = decode(tmp_path / "photo.jpg", shape=(1, 16, 8)).float()  # as displayed: 8 wide, 16 high
    top, bottom = x[0, :7].mean(), x[0, 9:].mean()
    assert top > 230 and bottom < 25  # rotated clockwise, the white left half is on top


def test_every_unreadable_file_is_named_up_to_ten(tmp_path):
    files = []
    for i in range(12):
        (tmp_path / f"bad{i:02d}.png").write_bytes(b"not a png")
        files.append((str(tmp_path / f"bad{i:02d}.png"), 0))
    Image.new("RGB", (4, 4)).save(tmp_path / "good.png")
    with pytest.raises(RunnerError) as err:
        decode_images([(str(tmp_path / "good.png"), 0), *files], (3, 4, 4), workers=0)
    message = str(err.value)
    assert message.startswith("cannot read 12 images: ")
    assert all(f"bad{i:02d}.png" in message for i in range(10)) and "bad10.png" not in message
    assert "and 2 more" in message and "good.png" not in message


def test_an_i_mode_png_from_an_older_pillow_is_read_as_16_bit():
    """Pillow before 13 opened 16-bit grayscale PNGs as mode I (Pillow 13 says I;16 and no longer writes I as PNG)."""
    img = Image.fromarray(np.full((4, 4), 100 * 257, dtype=np.int32))
    assert img.mode == "I"
    img.format = "PNG"  # as Image.open set it for such a file
    assert np.asarray(to_8bit(img, 1)).tolist() == [[100] * 4] * 4
