"""The verdict: exact grades and ratios on hand-made score tables, at each threshold's edge."""

import json
import math

import pandas as pd
import pytest

from gan_assets.core.evaluation.scoring import REAL_FLOOR
from gan_assets.core.evaluation.verdict import (
    FAIR,
    GOOD,
    POOR,
    UNGRADED,
    display_number,
    verdict_markdown,
    verdict_of,
    with_verdict_columns,
)

FLOOR = {"fd": 2.0, "kid": -2.86e-3, "precision": 0.5, "recall": 0.5, "class_coverage": 10.0, "class_kl": 1e-4,
         "nn_ratio": 1.0}


def table(checkpoint: dict, floor: dict = FLOOR) -> pd.DataFrame:
    """One checkpoint (the floor's scores, overridden by `checkpoint`) and the real floor."""
    frame = pd.DataFrame([{"name": "step_000010", "step": 10, **floor, **checkpoint},
                          {"name": REAL_FLOOR, "step": None, **floor}])
    frame["step"] = frame["step"].astype("Int64")
    return frame


def verdict(checkpoint: dict, floor: dict = FLOOR):
    return verdict_of(table(checkpoint, floor), "step_000010")


@pytest.mark.parametrize("fd, grade", [(6.0, GOOD), (6.02, FAIR), (20.0, FAIR), (20.2, POOR)])
def test_fd_ratio_bands_include_their_upper_edge(fd, grade):
    found = verdict({"fd": fd})
    assert found.grade == grade
    assert found.fd_ratio == pytest.approx(fd / 2.0)


def test_fd_ratio_and_its_reason():
    found = verdict({"fd": 7.0})
    assert found.fd_ratio == 3.5 and found.as_dict()["fd_ratio"] == 3.5
    assert "FD 3.5× the real floor (good: ≤ 3×)" in found.reasons
    assert found.as_dict()["comparisons"]["fd"] == {"value": 7.0, "floor": 2.0, "ratio": 3.5}


@pytest.mark.parametrize("metric", ["precision", "recall"])
@pytest.mark.parametrize("value, grade", [(0.4, GOOD), (0.39, FAIR), (0.25, FAIR), (0.24, POOR)])
def test_precision_and_recall_against_their_floors(metric, value, grade):
    assert verdict({metric: value}).grade == grade  # the floor is 0.5: the ratio is 2 × value


@pytest.mark.parametrize("classes, grade, reason", [(10, GOOD, "all 10 classes covered"),
                                                    (9, FAIR, "9 of 10 classes covered"),
                                                    (8, POOR, "8 of 10 classes covered")])
def test_classes_covered_against_the_floor(classes, grade, reason):
    found = verdict({"class_coverage": float(classes)})
    assert found.grade == grade and reason in found.reasons
    assert found.as_dict()["comparisons"]["class_coverage"] == {"value": classes, "floor": 10, "distance": classes - 10}


@pytest.mark.parametrize("nn_ratio, grade", [(0.8, GOOD), (0.79, FAIR), (0.5, FAIR), (0.49, POOR)])
def test_nn_ratio_far_below_one_copies_training_images(nn_ratio, grade):
    found = verdict({"nn_ratio": nn_ratio})
    assert found.grade == grade
    assert any("copies training images" in r for r in found.reasons) == (grade == POOR)


def test_the_worst_criterion_decides():
    assert verdict({"fd": 4.0, "recall": 0.1}).grade == POOR  # a fair FD, a collapsed recall


def test_kid_is_a_distance_and_its_negative_floor_is_explained():
    found = verdict({"kid": 1.14e-3})
    kid = found.as_dict()["comparisons"]["kid"]
    assert "ratio" not in kid and kid["distance"] == pytest.approx(4.0e-3)
    assert kid["floor"] == -2.86e-3
    assert "kid +0.004 over floor -2.9e-03 (unbiased)" in found.reasons
    assert found.grade == GOOD  # KID is compared, not graded


def test_a_missing_metric_is_neither_compared_nor_graded():
    found = verdict({"recall": float("nan")})
    assert "recall" not in found.as_dict()["comparisons"] and found.grade == GOOD
    floor = {k: v for k, v in FLOOR.items() if k not in ("fd", "precision")}
    found = verdict({}, floor)
    assert found.fd_ratio is None and found.as_dict()["fd_ratio"] is None
    assert set(found.as_dict()["comparisons"]) == set(floor) and found.grade == GOOD
    only_kid = verdict({}, {"kid": 0.01})
    assert only_kid.grade == UNGRADED and only_kid.fd_ratio is None


POINTS_FLOOR = {"modes": 8.0, "hq_fraction": 1.0, "reverse_kl": 1e-5}


@pytest.mark.parametrize("scores, grade", [({"hq_fraction": 0.8, "reverse_kl": 0.05}, GOOD),
                                           ({"hq_fraction": 0.69, "reverse_kl": 0.015}, FAIR),
                                           ({"reverse_kl": 0.3}, FAIR),
                                           ({"reverse_kl": 0.6}, POOR),
                                           ({"modes": 7.0}, POOR)])  # 7 of 8 is under 90% of the modes
def test_a_mixture_is_graded_on_its_modes(scores, grade):
    found = verdict(scores, POINTS_FLOOR)
    assert found.grade == grade and found.fd_ratio is None
    assert "distance" in found.as_dict()["comparisons"]["reverse_kl"]


def test_a_likelihood_family_grades_what_it_has_and_says_bits_per_dim_has_no_floor():
    frame = table({"fd": 40.0, "bits_per_dim": 1.2345})
    frame.loc[frame["name"] == REAL_FLOOR, "bits_per_dim"] = float("nan")  # real data has no likelihood
    found = verdict_of(frame, "step_000010")
    assert found.grade == POOR and found.fd_ratio == 20.0
    assert found.as_dict()["comparisons"]["bits_per_dim"] == {"value": 1.23, "floor": None}
    assert "bits/dim 1.23 (real data has no floor)" in found.reasons


def test_inception_columns_are_compared_not_graded():
    found = verdict({"fd_inception": 300.0}, {**FLOOR, "fd_inception": 10.0})
    assert found.grade == GOOD and found.as_dict()["comparisons"]["fd_inception"]["ratio"] == 30.0


def test_the_verdict_is_plain_json_and_markdown():
    found = verdict({"fd": 7.0, "class_coverage": 9.0})
    assert json.loads(json.dumps(found.as_dict())) == found.as_dict()
    assert found.as_dict()["step"] == 10 and found.as_dict()["checkpoint"] == "step_000010"
    markdown = verdict_markdown(found)
    assert markdown.startswith("**fair** (FD 3.5× the real floor)")
    assert "- 9 of 10 classes covered" in markdown.splitlines()


def test_display_columns_are_added_to_a_copy():
    frame = pd.concat([table({"fd": 7.0}).iloc[:1].assign(name="step_000020", step=20), table({"fd": 30.0})])
    shown = with_verdict_columns(frame)
    assert list(shown.columns[:4]) == ["name", "step", "grade", "fd_ratio"] and "grade" not in frame
    assert shown["grade"].tolist()[:2] == [FAIR, POOR] and pd.isna(shown["grade"].iloc[2])  # the floor: no grade
    assert shown["fd_ratio"].tolist() == [3.5, 15.0, 1.0]


def test_numbers_are_rounded_to_what_they_mean():
    assert display_number("fd", 21.791095582538805) == 21.8
    assert display_number("kid", -0.0028612345) == -0.00286
    assert display_number("recall", 0.917246175) == 0.917
    assert display_number("class_coverage", 10.0) == 10 and isinstance(display_number("modes", 8.0), int)
    assert display_number("fd_ratio", 3.4567) == 3.46
    assert display_number("fd", float("nan")) is None and display_number("step", pd.NA) is None
    assert not math.isnan(display_number("precision_inception", 0.12345))


def test_every_reason_fits_the_asset_pages_metadata_column():
    """About 55 monospace characters of a list item show at 1,280 px beside checkpoint_scores' longest keys."""
    found = verdict({"fd": 62.0, "precision": 0.312, "recall": 0.1, "class_coverage": 7.0, "kid": 1.14e-3,
                     "nn_ratio": 0.5, "kid_inception": 1.14e-3}, FLOOR | {"kid_inception": -2.86e-3})
    assert len(found.reasons) >= 7 and max(map(len, found.reasons)) <= 55, found.reasons
