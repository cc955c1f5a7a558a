"""Class metrics from the evaluator's softmax, on hand-computed examples."""

import math

import pytest
import torch

from gan_assets.core.evaluation.metrics import Evidence, MetricContext
from gan_assets.core.evaluation.metrics.classes import (
    CLASS_KL_EPS,
    class_coverage,
    class_kl,
    classifier_score,
    confidence,
    predicted_histogram,
)


def _onehot(labels: list[int], k: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(labels), k).float()


def _evidence(probs: torch.Tensor) -> Evidence:
    return Evidence(features=torch.zeros(probs.shape[0], 1), probs=probs)


def _ctx(prior: list[float], **kw) -> MetricContext:
    return MetricContext(class_prior=torch.tensor(prior), **kw)


UNIFORM4 = [0.25] * 4


def test_predicted_histogram_uses_argmax():
    probs = torch.tensor([[0.6, 0.4, 0, 0], [0.5, 0.2, 0.3, 0], [0.1, 0.1, 0.8, 0], [0.3, 0.0, 0.3, 0.4]])
    torch.testing.assert_close(predicted_histogram(probs), torch.tensor([0.5, 0.0, 0.25, 0.25], dtype=torch.float64))


def test_class_kl_hand_example():
    s = _evidence(_onehot([0, 0, 1, 2], 4))  # histogram [.5, .25, .25, 0] vs uniform
    value = class_kl(s, s, _ctx(UNIFORM4))["class_kl"]
    eps, z = CLASS_KL_EPS, 1 + 4 * CLASS_KL_EPS  # the documented smoothing, by hand
    p, q = [(h + eps) / z for h in (0.5, 0.25, 0.25, 0.0)], (0.25 + eps) / z
    assert value == pytest.approx(sum(pi * math.log(pi / q) for pi in p), rel=1e-12)
    assert value == pytest.approx(0.5 * math.log(2.0), abs=1e-4)  # unsmoothed: 0·log 0 = 0


def test_class_kl_is_zero_when_histograms_match_and_finite_on_empty_prior_class():
    s = _evidence(_onehot([0, 1, 2, 3], 4))
    assert class_kl(s, s, _ctx(UNIFORM4))["class_kl"] == pytest.approx(0.0, abs=1e-12)
    value = class_kl(s, s, _ctx([1 / 3, 1 / 3, 1 / 3, 0.0]))["class_kl"]
    assert math.isfinite(value) and value > 1.0


def test_class_kl_checks_class_count():
    s = _evidence(_onehot([0, 1], 2))
    with pytest.raises(ValueError, match="4 classes"):
        class_kl(s, s, _ctx(UNIFORM4))


@pytest.mark.parametrize(("counts", "covered"), [([50, 48, 2, 0], 3.0), ([50, 49, 1, 0], 2.0), ([100, 0, 0, 0], 1.0)])
def test_class_coverage_counts_classes_at_the_threshold(counts, covered):
    labels = [c for c, n in enumerate(counts) for _ in range(n)]
    s = _evidence(_onehot(labels, 4))
    assert class_coverage(s, s, _ctx(UNIFORM4, coverage_threshold=0.02)) == {"class_coverage": covered}


def test_confidence_is_mean_max_probability():
    s = _evidence(torch.tensor([[0.9, 0.1], [0.4, 0.6]]))
    assert confidence(s, s, _ctx([0.5, 0.5]))["confidence"] == pytest.approx(0.75)


def test_classifier_score_bounds():
    confident_balanced = _evidence(_onehot([0, 1, 2, 3] * 5, 4))
    score = classifier_score(confident_balanced, confident_balanced, _ctx(UNIFORM4))["classifier_score"]
    assert score == pytest.approx(4.0)
    same = _evidence(torch.tensor([[0.7, 0.1, 0.1, 0.1]]).repeat(6, 1))
    assert classifier_score(same, same, _ctx(UNIFORM4))["classifier_score"] == pytest.approx(1.0)


def test_classifier_score_hand_example():
    # p(y|x) = [1, 0] and [.5, .5]; p(y) = [.75, .25]
    s = _evidence(torch.tensor([[1.0, 0.0], [0.5, 0.5]]))
    kl1 = math.log(1 / 0.75)
    kl2 = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    expected = math.exp((kl1 + kl2) / 2)
    assert classifier_score(s, s, _ctx([0.5, 0.5]))["classifier_score"] == pytest.approx(expected, rel=1e-12)
