"""Our FID Inception against the reference tools, with no trained weights and no download.

pytorch-fid (a test dependency) and our network get the same random weights in pytorch-fid's file layout: the pool3
features and the FID of two small sets must agree. pytorch-fid's weight download is replaced by a function that hands
over those weights, and checks it was asked for the file it would have downloaded. Measured on 2 CPU threads: the
features are bit-identical (max |diff| 0.0; asserted to 1e-6), FIDs agree to ~1e-9 relative (asserted to 1e-6).
The preprocessing is checked against clean-fid's own resize functions on a known image: "clean" exactly.
Inputs are small (107x107 into the network; the net accepts any side from 75) to keep the file within ~10 s.
"""

import numpy as np
import pytest
import torch
from cleanfid.resize import build_resizer
from pytorch_fid import inception as pytorch_fid_inception
from pytorch_fid.fid_score import calculate_frechet_distance

from gan_assets.core.evaluation.metrics.distances import frechet_distance_from_stats, gaussian_stats
from gan_assets.core.evaluation.metrics.fid_inception import FIDInceptionV3
from gan_assets.core.evaluation.metrics.inception import (
    INPUT_SIDE,
    InceptionExtractor,
    clean_resize,
    inception_input,
    legacy_pytorch_resize,
    to_uint8,
)
from gan_assets.core.models.gan.networks import model_input
from tests.core.evaluation.fid_weights import random_fid_state

FEATURE_TOL = dict(rtol=1e-6, atol=1e-6)  # measured: 0.0, the same float32 operations in the same order
FID_RTOL = 1e-6  # measured: ~1e-9 to 1e-7 (scipy's sqrtm there, eigh-based here, float64 both)


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return random_fid_state(seed=0)


@pytest.fixture(scope="module")
def reference(state):
    """pytorch-fid's InceptionV3 factory, with its download answered by `state`."""
    asked = []

    def no_download(url, *args, **kwargs):
        asked.append(url)
        return state

    patch = pytest.MonkeyPatch()
    patch.setattr(pytorch_fid_inception, "load_state_dict_from_url", no_download)

    def build(**kwargs) -> torch.nn.Module:
        model = pytorch_fid_inception.InceptionV3([3], use_fid_inception=True, **kwargs).eval()
        assert asked[-1] == pytorch_fid_inception.FID_WEIGHTS_URL  # its FID network: the file it would download
        return model

    yield build
    patch.undo()


@pytest.fixture(scope="module")
def ours(state) -> FIDInceptionV3:
    model = FIDInceptionV3()
    model.load_state_dict(state)  # strict: pytorch-fid's keys, every one
    return model.eval()


@pytest.fixture(scope="module")
def two_sets() -> tuple[torch.Tensor, torch.Tensor]:
    """Two sets of already-normalised network inputs, from different distributions."""
    gen = torch.Generator().manual_seed(1)
    return torch.rand(8, 3, 107, 107, generator=gen) * 2 - 1, torch.rand(8, 3, 107, 107, generator=gen) * 1.5 - 1


@pytest.mark.filterwarnings("ignore:.*singular:scipy.linalg.LinAlgWarning", "ignore:The `disp` argument")
@torch.no_grad()
def test_pool_features_and_fid_equal_pytorch_fids(reference, ours, two_sets):
    theirs = reference(resize_input=False, normalize_input=False)
    ref_features = [theirs(x)[0].flatten(1) for x in two_sets]
    our_features = [ours(x) for x in two_sets]
    for a, b in zip(ref_features, our_features):
        assert b.shape == (8, 2048) and a.std() > 0.1  # features with a scale at which a mismatch would show
        torch.testing.assert_close(b, a, **FEATURE_TOL)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 2048x2048 eigh on 2 shared cores: one thread is the faster
    try:
        measured = frechet_distance_from_stats(*gaussian_stats(our_features[0]), *gaussian_stats(our_features[1]))
    finally:
        torch.set_num_threads(threads)
    assert measured > 1 and measured == pytest.approx(pytorch_fid_of(*ref_features), rel=FID_RTOL)


def pytorch_fid_of(f1: torch.Tensor, f2: torch.Tensor) -> float:
    """pytorch-fid's FID of two small feature sets, computed in the coordinates of the (2n-1)-d affine span of all
    their points: an isometry that keeps every mean difference and covariance, hence the FID, exactly, while scipy's
    sqrtm meets 15x15 matrices instead of 2048x2048 ones (~20 s on one thread)."""
    both = torch.cat([f1, f2]).double().numpy()
    centre = both.mean(0)
    basis, _ = np.linalg.qr((both - centre).T)  # (2048, 2n) orthonormal columns spanning the centred points
    p1, p2 = ((f.double().numpy() - centre) @ basis for f in (f1, f2))
    return calculate_frechet_distance(p1.mean(0), np.cov(p1, rowvar=False), p2.mean(0), np.cov(p2, rowvar=False))


@torch.no_grad()
def test_legacy_pytorch_preprocessing_equals_pytorch_fids_own(reference, ours):
    """uint8 images (RGB and grey) to features, end to end at 299x299: pytorch-fid resizes and scales inside."""
    gen = torch.Generator().manual_seed(4)
    rgb = torch.randint(0, 256, (2, 3, 12, 12), generator=gen, dtype=torch.uint8)
    grey = torch.randint(0, 256, (2, 1, 12, 12), generator=gen, dtype=torch.uint8)
    theirs = reference()  # resize_input=True, normalize_input=True: its defaults, fed [0, 1] images
    extractor = InceptionExtractor(ours, "0" * 64, resize="legacy_pytorch")
    for images in (rgb, grey):
        expected = theirs(images.expand(-1, 3, -1, -1).float() / 255)[0].flatten(1).double()
        torch.testing.assert_close(extractor.features(images), expected, **FEATURE_TOL)
    # samples in [-1, 1] are quantised to the same bytes first
    torch.testing.assert_close(extractor.features(model_input(rgb)), extractor.features(rgb), rtol=0, atol=0)


def known_image() -> np.ndarray:
    """A 28x28 RGB (h, w, c) uint8 image with edges, ramps and a checkerboard: every part of a resize kernel shows."""
    y, x = np.mgrid[:28, :28]
    return np.stack([(9 * y + 3 * x) % 256, ((y // 4 + x // 4) % 2) * 255, np.clip(20 * (x - y) + 128, 0, 255)],
                    axis=-1).astype(np.uint8)


def test_clean_resize_is_clean_fids_exactly():
    image = known_image()
    expected = build_resizer("clean")(image)  # make_resizer("PIL", False, "bicubic", (299, 299))
    ours = clean_resize(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert ours.shape == expected.shape == (INPUT_SIDE, INPUT_SIDE, 3) and ours.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(ours, expected)
    assert ours.min() == 0 and ours.max() == 255  # the bicubic overshoot at the checkerboard's edges, clipped
    grey = image[..., :1]  # clean-fid reads a grey file converted to RGB: three equal channels
    ours_grey = inception_input(torch.from_numpy(grey).permute(2, 0, 1)[None], "clean")[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(ours_grey, (build_resizer("clean")(np.repeat(grey, 3, axis=2)) - 128) / 128)


def test_legacy_pytorch_resize_is_clean_fids_legacy_pytorch():
    """clean-fid's legacy_pytorch resizes [0, 255] floats, pytorch-fid (and we) [0, 1] ones: equal to rounding."""
    image = known_image()
    expected = build_resizer("legacy_pytorch")(image)
    ours = legacy_pytorch_resize(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy() * 255
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-4)


def test_network_input_scaling_per_mode():
    """clean: the TensorFlow graph's (x - 128) / 128, as clean-fid feeds it; legacy_pytorch: pytorch-fid's 2x - 1."""
    flat = torch.full((1, 1, 5, 5), 128, dtype=torch.uint8)
    assert inception_input(flat, "clean").shape == (1, 3, INPUT_SIDE, INPUT_SIDE)
    assert torch.equal(inception_input(flat, "clean"), torch.zeros(1, 3, INPUT_SIDE, INPUT_SIDE))
    torch.testing.assert_close(inception_input(flat, "legacy_pytorch"),
                               torch.full((1, 3, INPUT_SIDE, INPUT_SIDE), 2 * 128 / 255 - 1))
    with pytest.raises(ValueError, match="uint8"):
        inception_input(torch.zeros(1, 3, 5, 5), "clean")
    levels = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    assert torch.equal(to_uint8(model_input(levels)), levels)  # the real bytes, back from [-1, 1]
    assert to_uint8(torch.tensor([-1.5, -1.0, 0.0, 1.0, 2.0])).tolist() == [0, 0, 128, 255, 255]
