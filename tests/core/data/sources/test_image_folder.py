"""image_folder from tiny folders the tests write: good, mixed, corrupt, empty and mislabelled input."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan_assets.core.config import DatasetConfig
from gan_assets.core.data.sources import DatasetError, load_dataset


def write_image(path: Path, size=(12, 10), mode="RGB", value=128, fmt=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = value if mode in ("L", "P", "1", "I") else (value,) * len(mode)
    Image.new(mode, size, colour).save(path, format=fmt)
    return path


def write_classes(root: Path, per_class: int = 5, classes=("cat", "dog")) -> Path:
    for k, name in enumerate(classes):
        for i in range(per_class):
            write_image(root / name / f"{i:02d}.png", value=40 * k + i)
    return root


def folder_config(root: Path, **overrides) -> DatasetConfig:
    return DatasetConfig(**{"source": "image_folder", "root": str(root), "image_size": 8, **overrides})


def test_labelled_folder_reads_classes_in_sorted_order(tmp_path):
    data = load_dataset(folder_config(write_classes(tmp_path)))
    assert data.class_names == ("cat", "dog") and data.images.shape == (10, 1, 8, 8)
    np.testing.assert_array_equal(data.labels, [0] * 5 + [1] * 5)
    assert data.images[6, 0, 0, 0] == 41 and (data.split == "held_out").sum() == 2
    assert data.extra["skipped_files"] == "0"
    assert load_dataset(folder_config(tmp_path)).content_hash() == data.content_hash()


def test_mixed_sizes_and_modes_are_fitted_and_centre_cropped(tmp_path):
    write_image(tmp_path / "a" / "wide.png", size=(40, 10), mode="RGB")
    write_image(tmp_path / "a" / "grey.jpg", size=(9, 30), mode="L", fmt="JPEG")
    write_image(tmp_path / "a" / "alpha.png", size=(16, 16), mode="RGBA", value=0)  # transparent → white
    write_image(tmp_path / "a" / "palette.png", size=(5, 5), mode="P")
    write_image(tmp_path / "a" / "photo.webp", size=(64, 48), mode="RGB", fmt="WEBP")
    stripes = np.zeros((10, 40, 3), np.uint8)
    stripes[:, 15:25] = 255  # only the centre 10 columns are white
    Image.fromarray(stripes).save(tmp_path / "a" / "stripes.png")
    data = load_dataset(folder_config(tmp_path, channels=3))
    assert data.images.shape == (6, 3, 8, 8)
    assert (data.images[0] == 255).all()  # alpha.png, sorted first
    assert data.images[4].min() >= 240  # stripes.png: the crop kept the white centre (bicubic ringing)


def test_unlabelled_folder_with_labels_false(tmp_path):
    for i in range(4):
        write_image(tmp_path / f"{i}.png")
    data = load_dataset(folder_config(tmp_path, labels=False))
    assert data.class_names == ("all",) and len(data.ids) == 4


def test_labels_requested_from_an_unlabelled_folder(tmp_path):
    write_image(tmp_path / "0.png")
    with pytest.raises(DatasetError, match=rf"dataset.labels is true but {tmp_path} has no class sub-folders"):
        load_dataset(folder_config(tmp_path))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "text"])
def test_bad_files_fail_naming_them(tmp_path, damage):
    write_classes(tmp_path)
    bad = {"truncated": tmp_path / "cat" / "03.png", "garbage": tmp_path / "dog" / "x.jpg",
           "text": tmp_path / "dog" / "notes.txt"}[damage]
    if damage == "truncated":  # noise does not compress: cutting the file cuts the pixel data
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(bad)
        bad.write_bytes(bad.read_bytes()[:1500])
    else:
        bad.write_bytes(b"this is not an image\n")
    with pytest.raises(DatasetError, match=rf"1 unreadable file\(s\) under {tmp_path}: {bad} .*skip_bad_files"):
        load_dataset(folder_config(tmp_path))


def test_skip_bad_files_counts_them_and_keeps_ids_stable(tmp_path):
    write_classes(tmp_path)
    good = load_dataset(folder_config(tmp_path))
    (tmp_path / "cat" / "02b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "dog" / "readme.md").write_text("hello")
    (tmp_path / "dog" / ".DS_Store").write_bytes(b"\0")  # hidden: not even listed
    data = load_dataset(folder_config(tmp_path, skip_bad_files=True))
    assert data.extra["skipped_files"] == "2" and "02b.png" in data.extra["skipped_examples"]
    assert len(data.ids) == 10 and data.ids.tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9, 10]
    np.testing.assert_array_equal(data.images, good.images)


def test_missing_root(tmp_path):
    with pytest.raises(DatasetError, match=rf"dataset.root {tmp_path / 'nope'} does not exist"):
        load_dataset(folder_config(tmp_path / "nope"))


def test_empty_folder(tmp_path):
    with pytest.raises(DatasetError, match=rf"{tmp_path} is empty"):
        load_dataset(folder_config(tmp_path))


def test_empty_class_folder(tmp_path):
    write_classes(tmp_path)
    (tmp_path / "eel").mkdir()
    with pytest.raises(DatasetError, match=rf"empty class folder\(s\) {tmp_path / 'eel'}"):
        load_dataset(folder_config(tmp_path))


def test_class_with_one_image(tmp_path):
    write_classes(tmp_path)
    write_image(tmp_path / "eel" / "only.png")
    with pytest.raises(DatasetError, match=rf"too few usable images in {tmp_path / 'eel'} \(1 image\).*at least 3"):
        load_dataset(folder_config(tmp_path))


def test_class_emptied_by_skipping_is_refused(tmp_path):
    write_classes(tmp_path)
    (tmp_path / "eel").mkdir()
    (tmp_path / "eel" / "a.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=rf"{tmp_path / 'eel'} \(0 images\)"):
        load_dataset(folder_config(tmp_path, skip_bad_files=True))


def test_loose_files_beside_class_folders(tmp_path):
    write_classes(tmp_path)
    write_image(tmp_path / "stray.png")
    with pytest.raises(DatasetError, match=rf"mixes class sub-folders with loose files \({tmp_path / 'stray.png'}"):
        load_dataset(folder_config(tmp_path))
