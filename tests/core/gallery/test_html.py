"""The HTML gallery of a tiny run: every section present, every embedded image decodes; and its views'
numbers (interpolation ends, class shares, neighbour distances, batch dependence) are what they claim."""

import base64
import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

from gan_assets.core.evaluation.classifier import train_classifier
from gan_assets.core.evaluation.loading import load_generator
from gan_assets.core.evaluation.sampling import SAMPLING_MODES
from gan_assets.core.evaluation.scoring import score_checkpoints
from gan_assets.core.gallery.grids import render_gallery
from gan_assets.core.gallery.page import score_chart_png, write_gallery_html
from gan_assets.core.gallery.views import batch_dependence, class_rows, nearest_neighbours, slerp
from gan_assets.core.models.gan.networks import model_input
from tests.core.training.test_manifest import make_tiny_run

SECTIONS = ("Best checkpoint: ", "Progress over training", "One row per class", "Latent interpolations",
            "Nearest training neighbours", "Batch dependence of batch norm", "Scores over training",
            "Losses over training", "Score table", "Every checkpoint")


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    config, data, reference, manifest = make_tiny_run(tmp_path_factory.mktemp("run"))
    train = data.subset("train")
    classifier = train_classifier(train.images, train.labels, 10, config.evaluator, config.seed)
    scores = score_checkpoints(manifest, classifier=classifier, data=data, evaluation=config.evaluation,
                               reference=reference, seed=config.seed)
    out = tmp_path_factory.mktemp("gallery")
    gallery = render_gallery(manifest, reference=reference, grid_size=4, sampling="eval", out_dir=out)
    page = write_gallery_html(out / "index.html", title="tiny", manifest=manifest, gallery=gallery, scores=scores,
                              score_chart=score_chart_png(scores),
                              best="step_000020", reference=reference, sampling="eval", classifier=classifier,
                              data=data, config=config.gallery, seed=config.seed)
    return page.read_text(), manifest, reference, classifier, data


def test_the_page_has_every_section_and_every_image_decodes(drawn):
    html = drawn[0]
    titles = re.findall(r"<h2>(.*?)</h2>", html)
    for section in SECTIONS:
        assert any(t.startswith(section) for t in titles), section
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) >= 12
    for encoded in images:
        image = Image.open(io.BytesIO(base64.b64decode(encoded)))
        image.load()  # raises on a truncated or corrupt PNG
        assert min(image.size) > 0
    assert "http://" not in html and "https://" not in html  # nothing fetched
    assert html.count("<tr>") >= 10 + 3  # a row per class, the score table's rows


def test_a_training_image_is_its_own_nearest_neighbour(drawn):
    *_, classifier, data = drawn
    train = data.subset("train").examples
    found = nearest_neighbours(model_input(torch.from_numpy(train[:3])), train, classifier=classifier, k=2, seed=0)
    np.testing.assert_allclose(found.distances[:, 0], 0.0, atol=1e-3)
    assert (np.diff(found.distances, axis=1) >= 0).all()  # nearest first
    assert found.grid.shape[1] == 2 + 3 * (16 + 2)  # sample + 2 neighbours of 16 px


def test_class_shares_of_an_unconditional_generator_sum_to_one(drawn):
    _, manifest, reference, classifier, data = drawn
    generator = load_generator(manifest, manifest.latest, "eval", *reference.tensors())
    rows = class_rows(generator, classifier=classifier, class_names=data.class_names, per_class=4, seed=1)
    assert [r.name for r in rows] == list(data.class_names)
    assert sum(r.share for r in rows) == pytest.approx(1.0)
    assert all((r.grid is None) == (r.share == 0) for r in rows)


def test_only_train_mode_batch_norm_makes_a_sample_depend_on_its_batch(drawn):
    _, manifest, reference, *_ = drawn
    generators = {mode: load_generator(manifest, manifest.latest, mode, *reference.tensors()) for mode in SAMPLING_MODES}
    views = {v.mode: v for v in batch_dependence(generators, targets=4, seed=0)}
    assert min(views["train"].differences.values()) > 0.1  # grey levels: a visible share of pixels moved
    for mode in ("eval", "reference"):
        assert max(views[mode].differences.values()) == pytest.approx(0.0, abs=1e-2), mode


def test_spherical_interpolation_ends_at_its_endpoints_and_keeps_the_norm_of_equal_norm_ends():
    a, b = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 3.0]])
    t = torch.linspace(0, 1, 5).view(5, 1)
    path = slerp(a.expand(5, -1), b.expand(5, -1), t)
    torch.testing.assert_close(path[0], a[0])
    torch.testing.assert_close(path[-1], b[0])
    torch.testing.assert_close(path.norm(dim=1), torch.full((5,), 3.0))
    torch.testing.assert_close(slerp(a, a, torch.tensor([[0.5]])), a)  # parallel ends: no division by zero
