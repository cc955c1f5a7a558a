"""image_folder against hostile input (issue 24): foreign formats under image names, 16-bit and odd pixel
modes, symlinks out of the root or into loops, and a root that is a system folder."""

import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin

from gan_assets.core.data.sources import DatasetError, load_dataset
from gan_assets.core.data.sources import image_folder as module
from gan_assets.core.data.sources.common import refuse_system_root
from tests.core.data.sources.test_image_folder import folder_config, write_classes, write_image


def png16(path: Path, pixels: np.ndarray) -> Path:
    """A 16-bit PNG written byte by byte (Pillow cannot write 16-bit RGB): H×W grey, or H×W×{2,3,4}."""
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[1 if pixels.ndim == 2 else pixels.shape[-1]]  # grey, +alpha, RGB, RGBA
    height, width = pixels.shape[:2]
    rows = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))
    return path


def one_image(path: Path, **overrides) -> np.ndarray:
    """`path` ingested from an unlabelled folder (with two copies, so both splits get one), at image_size 8."""
    for copy in ("copy1", "copy2"):
        path.with_name(copy + path.suffix).write_bytes(path.read_bytes())
    data = load_dataset(folder_config(path.parent, labels=False, **overrides))
    assert data.extra["skipped_files"] == "0" and len(data.ids) == 3
    assert (data.images == data.images[0]).all()
    return data.images[0]


# -- decode by content, not suffix -------------------------------------------------------------------------

@pytest.mark.parametrize(("fmt", "name", "shown"), [("TIFF", "x.png", "TIFF data (named .png)"),
                                                   ("GIF", "x.jpg", "GIF data (named .jpg)"),
                                                   ("BMP", "x.webp", "BMP data (named .webp)"),
                                                   ("TIFF", "x", "TIFF data (no suffix)")])
def test_foreign_format_under_an_image_name_fails_naming_its_real_format(tmp_path, fmt, name, shown):
    write_classes(tmp_path)
    bad = write_image(tmp_path / "dog" / name, fmt=fmt)
    with pytest.raises(DatasetError, match=rf"1 unreadable file\(s\) under {tmp_path}: {bad} \({re.escape(shown)}: only PNG, "
                                           r"JPEG and WebP are read\).*skip_bad_files"):
        load_dataset(folder_config(tmp_path))


def test_foreign_format_is_skipped_and_no_other_decoder_runs(tmp_path, monkeypatch):
    write_classes(tmp_path)
    good = load_dataset(folder_config(tmp_path))
    write_image(tmp_path / "cat" / "02b.png", fmt="TIFF")
    write_image(tmp_path / "cat" / "02c.png", fmt="GIF")

    def never(self):
        raise AssertionError("the TIFF decoder ran on a user's file")

    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "_open", never)
    data = load_dataset(folder_config(tmp_path, skip_bad_files=True))
    assert data.extra["skipped_files"] == "2" and "02c.png" in data.extra["skipped_examples"]
    assert data.ids.tolist() == [0, 1, 2, 5, 6, 7, 8, 9, 10, 11]
    np.testing.assert_array_equal(data.images, good.images)


def test_images_are_read_whatever_their_suffix(tmp_path):
    write_image(tmp_path / "a" / "png.jpg", mode="L", value=10)
    write_image(tmp_path / "a" / "jpeg", mode="L", value=200, fmt="JPEG")
    write_image(tmp_path / "a" / "webp.PNG", mode="RGB", value=90, fmt="WEBP")
    write_image(tmp_path / "a" / "mpo.jpg", mode="L", value=60, fmt="MPO")  # a JPEG with extra pictures
    data = load_dataset(folder_config(tmp_path, labels=False, held_out_fraction=0.25))
    assert data.extra["skipped_files"] == "0"
    np.testing.assert_allclose(data.images[:, 0, 4, 4].astype(int), [200, 60, 10, 90], atol=2)


def test_non_images_are_bad_files_saying_so(tmp_path):
    write_classes(tmp_path)
    (tmp_path / "dog" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0 not an image")
    with pytest.raises(DatasetError, match=rf"{tmp_path / 'dog' / 'Thumbs.db'} \(not a PNG, JPEG or WebP image\)"):
        load_dataset(folder_config(tmp_path))


# -- 16-bit and other modes --------------------------------------------------------------------------------

def test_sixteen_bit_grey_gradient_is_scaled_not_clipped(tmp_path):
    values = np.linspace(0, 65535, 64).round().astype(np.uint16).reshape(8, 8)
    values[0, :3] = [128, 129, 65407]  # either side of a rounding edge: 0, 1, 255 (65407 / 257 = 254.5…)
    Image.fromarray(values).save(tmp_path / "gradient.png")
    with Image.open(tmp_path / "gradient.png") as check:
        assert check.mode in ("I;16", "I;16B", "I")  # what this test is about
    expected = np.rint(values / 257)
    image = one_image(tmp_path / "gradient.png")
    assert image.shape == (1, 8, 8)
    np.testing.assert_allclose(image[0].astype(int), expected, atol=1)
    assert image[0, 0, :3].tolist() == [0, 1, 255] and image[0, 7, 7] == 255 and image.mean() == pytest.approx(
        expected.mean(), abs=0.5)


@pytest.mark.parametrize("channels", [1, 3])
def test_sixteen_bit_mid_grey_is_mid_grey(tmp_path, channels):
    Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(tmp_path / "mid.png")
    assert (one_image(tmp_path / "mid.png", channels=channels) == 128).all()  # Pillow's convert("L") gives 255


def test_sixteen_bit_grey_transparency_goes_onto_white(tmp_path):
    values = np.full((8, 8), 1000, np.uint16)
    values[:, 4:] = 7777  # the transparent grey
    Image.fromarray(values).save(tmp_path / "trns.png", transparency=7777)
    image = one_image(tmp_path / "trns.png")
    assert (image[0, :, :4] == 4).all() and (image[0, :, 4:] == 255).all()


def test_sixteen_bit_grey_is_turned_upright(tmp_path):
    values = np.zeros((8, 8), np.uint16)
    values[0] = 65535  # top row white; orientation 6 turns it into the right column
    image = Image.fromarray(values)
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(tmp_path / "turned.png", exif=exif)
    out = one_image(tmp_path / "turned.png")[0]
    assert (out[:, 7] == 255).all() and (out[:, :7] == 0).all()


@pytest.mark.parametrize(("shape", "value", "expected"), [
    ((8, 8, 3), (32896, 65535, 1000), (128, 255, 4)),  # RGB 16: 1000 / 257 = 3.9, Pillow keeps the high byte 3
    ((8, 8, 4), (32896, 0, 65535, 65535), (128, 0, 255)),  # RGBA 16, opaque
    ((8, 8, 2), (32896, 65535), (128, 128, 128)),  # grey + alpha 16
])
def test_sixteen_bit_colour_pngs_come_out_within_one_of_exact(tmp_path, shape, value, expected):
    path = png16(tmp_path / "deep.png", np.broadcast_to(np.array(value, np.uint16), shape))
    image = one_image(path, channels=3)
    np.testing.assert_allclose(image[:, 4, 4].astype(int), expected, atol=1)


def test_modes_that_cannot_be_converted_exactly_are_refused():
    with pytest.raises(module.BadImage, match="pixel mode F cannot be read without clipping"):
        module.sixteen_bit_grey(Image.new("F", (2, 2), 0.5))
    with pytest.raises(module.BadImage, match="pixel mode I cannot be read"):
        module.sixteen_bit_grey(Image.new("I", (2, 2), 300))  # 32-bit, not from a PNG: range unknown
    wide = Image.new("I", (2, 2), 70000)
    wide.format = "PNG"
    assert module.sixteen_bit_grey(wide)
    with pytest.raises(module.BadImage, match=r"pixel mode I holds values outside 0…65535 \(70000…70000\)"):
        module.to_eight_bit(wide, None)
    assert module.to_eight_bit(Image.new("I", (2, 2), 65535), None).getpixel((0, 0)) == 255


def test_an_unconvertible_mode_fails_the_ingestion_naming_file_and_mode(tmp_path, monkeypatch):
    write_classes(tmp_path)
    odd = write_image(tmp_path / "dog" / "palette.png", mode="P")
    monkeypatch.setattr(module, "EIGHT_BIT_MODES", module.EIGHT_BIT_MODES - {"P"})  # as if P could not be read
    with pytest.raises(DatasetError, match=rf"1 unreadable file\(s\) under {tmp_path}: {odd} \(pixel mode P cannot "
                                           "be read without clipping"):
        load_dataset(folder_config(tmp_path))


# -- symlinks ----------------------------------------------------------------------------------------------

@pytest.fixture
def no_decoding(monkeypatch):
    def refuse(*args):
        raise AssertionError("decoded a file before refusing the folder")

    monkeypatch.setattr(module, "decode", refuse)


def test_class_folder_linked_back_to_the_root_is_a_loop(tmp_path, no_decoding):
    root = write_classes(tmp_path / "data")
    (root / "all").symlink_to(root)
    with pytest.raises(DatasetError, match=rf"{root / 'all'} points back into {root.resolve()} \(a loop: every "
                                           r"image would be read twice\)"):
        load_dataset(folder_config(root))


def test_nested_link_to_an_ancestor_is_a_loop_and_ends(tmp_path, no_decoding):
    root = write_classes(tmp_path / "data")
    (root / "cat" / "deeper").mkdir()
    (root / "cat" / "deeper" / "up").symlink_to("../..")
    with pytest.raises(DatasetError, match=rf"{root / 'cat' / 'deeper' / 'up'} points back into {root.resolve()}"):
        load_dataset(folder_config(root))


@pytest.mark.parametrize("what", ["folder", "file"])
def test_links_out_of_the_root_are_refused(tmp_path, no_decoding, what):
    root = write_classes(tmp_path / "data")
    outside = write_classes(tmp_path / "elsewhere")
    link, target = ((root / "eel", outside / "cat") if what == "folder"
                    else (root / "cat" / "passwd.png", Path("/etc/passwd")))
    link.symlink_to(target)
    with pytest.raises(DatasetError, match=rf"{link} is a symlink to {target.resolve()}, outside dataset.root "
                                           rf"{root.resolve()}"):
        load_dataset(folder_config(root))


def test_relative_link_escaping_the_root_is_refused(tmp_path, no_decoding):
    root = write_classes(tmp_path / "data")
    write_image(tmp_path / "secret.png")
    (root / "cat" / "s.png").symlink_to("../../secret.png")
    secret = (tmp_path / "secret.png").resolve()
    with pytest.raises(DatasetError, match=rf"{root / 'cat' / 's.png'} is a symlink to {secret}, outside"):
        load_dataset(folder_config(root))


def test_links_that_would_read_something_twice_are_refused(tmp_path, no_decoding):
    root = write_classes(tmp_path / "data")
    (root / "kitten").symlink_to("cat")
    with pytest.raises(DatasetError, match=rf"{root / 'cat'} and {root / 'kitten'} are the same folder "
                                           rf"{(root / 'cat').resolve()} through a symlink"):
        load_dataset(folder_config(root))
    (root / "kitten").unlink()
    (root / "dog" / "again.png").symlink_to(root / "cat" / "00.png")
    with pytest.raises(DatasetError, match=rf"{root / 'cat' / '00.png'} and {root / 'dog' / 'again.png'} are the "
                                           "same file"):
        load_dataset(folder_config(root))


def test_links_inside_the_root_to_something_read_once_are_followed(tmp_path):
    root = write_classes(tmp_path / "data")
    plain = load_dataset(folder_config(root))
    (root / "cat").rename(root / ".cats")
    (root / "cat").symlink_to(".cats")  # a hidden folder is not listed: the link reads it once
    data = load_dataset(folder_config(root))
    assert data.class_names == ("cat", "dog")
    np.testing.assert_array_equal(data.images, plain.images)
    (tmp_path / "alias").symlink_to(root)  # the root itself may be a link
    assert load_dataset(folder_config(tmp_path / "alias")).content_hash() == plain.content_hash()


def test_dangling_and_looping_file_links_are_bad_files(tmp_path):
    root = write_classes(tmp_path / "data")
    (root / "cat" / "gone.png").symlink_to("nothere.png")
    (root / "dog" / "a.png").symlink_to("b.png")
    (root / "dog" / "b.png").symlink_to("a.png")
    with pytest.raises(DatasetError, match=rf"3 unreadable file\(s\).*{root / 'cat' / 'gone.png'} \("):
        load_dataset(folder_config(root))
    assert load_dataset(folder_config(root, skip_bad_files=True)).extra["skipped_files"] == "3"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifos_are_never_opened(tmp_path):
    root = write_classes(tmp_path / "data")
    os.mkfifo(root / "cat" / "pipe.png")  # opening it would block forever
    (root / "dog" / "pipe.png").symlink_to("../cat/pipe.png")
    assert len(load_dataset(folder_config(root)).ids) == 10


# -- system folders as the root ----------------------------------------------------------------------------

@pytest.mark.parametrize(("root", "why"), [("/", "the filesystem root"), ("/etc", "a system folder"),
                                           ("/usr", "a system folder"), ("/tmp", "a system folder"),
                                           ("/mnt", "a system folder"), ("/proc/self", "inside a kernel or device folder .*"),
                                           ("/sys/kernel", "inside a kernel or device folder .*")])
def test_system_folders_are_refused_before_listing(monkeypatch, root, why):
    monkeypatch.setattr(module, "walk_root", lambda root: pytest.fail("listed a system folder"))
    with pytest.raises(DatasetError, match=rf"image_folder: dataset.root {root} (\(resolves to .*\) )?is {why}: "
                                           "reading all of it"):
        load_dataset(folder_config(Path(root)))


def test_a_link_to_a_system_folder_and_the_home_folder_are_refused(tmp_path, monkeypatch):
    (tmp_path / "slash").symlink_to("/")
    with pytest.raises(DatasetError, match=rf"dataset.root {tmp_path / 'slash'} \(resolves to /\) is the "
                                           "filesystem root"):
        load_dataset(folder_config(tmp_path / "slash"))
    home = write_classes(tmp_path / "me" / "pics").parent
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(DatasetError, match=rf"dataset.root {home} is your home folder itself"):
        load_dataset(folder_config(home))
    assert load_dataset(folder_config(home / "pics")).class_names == ("cat", "dog")


def test_sub_folders_of_system_folders_stay_allowed():
    for root in ("/tmp/x", "/home/me/pics", "/mnt/usb", "/var/data/images"):
        refuse_system_root(Path(root), "image_folder")  # no error
