"""The leaderboard page's tables: every column of the board in exactly one table, each narrow enough to show whole,
sortable on the page, and the same tables as markdown for a terminal."""

import pandas as pd
import pytest

from gan_assets.assets.leaderboard import (
    CONFIG_TABLE_WIDTH,
    METRICS_TABLE_WIDTH,
    TABLES,
    UNSCORED,
    leaderboard_markdown,
    leaderboard_tables,
    ranking_markdown,
    sortable_table,
)
from gan_assets.core.comparison.ranking import build_leaderboard


def board(config_columns: int) -> pd.DataFrame:
    columns = [c for table in TABLES.values() for c in table if c not in ("experiment", "status", "grade")]
    rows = [{"experiment": name, "status": "scored", "grade": "fair", **{c: 0.123456 for c in columns},
             **{f"config.training.field{i}": f"{name}-{i}" for i in range(config_columns)}} for name in ("a", "b")]
    return pd.DataFrame(rows)


def test_every_column_shows_in_exactly_one_table_each_led_by_the_experiment():
    table = board(config_columns=CONFIG_TABLE_WIDTH + 2)
    tables = leaderboard_tables(table)
    assert list(tables) == ["leaderboard", "leaderboard_scores", "leaderboard_runs", "leaderboard_more",
                            "leaderboard_speed", "leaderboard_extra", "config_differences", "config_differences_2"]
    assert all(columns[0] == "experiment" for columns in tables.values())
    shown = [c for columns in tables.values() for c in columns[1:]]
    assert sorted(shown) == sorted(c for c in table.columns if c != "experiment")  # each once
    assert max(len(columns) for columns in tables.values()) <= max(len(t) for t in TABLES.values())
    assert tables["leaderboard"][1:3] == ["grade", "fd_ratio"]  # the verdict before the scores


def test_the_page_tables_sort_as_numbers_and_text():
    table = board(config_columns=1)
    value = sortable_table(table[leaderboard_tables(table)["leaderboard"]])
    kinds = {c.name: c.type for c in value.schema.columns}
    assert kinds["experiment"] == kinds["grade"] == "string" and kinds["fd"] == kinds["fd_ratio"] == "float"
    first = value.records[0].data
    assert first["experiment"] == "a" and first["fd"] == pytest.approx(0.1235)  # 4 significant digits
    missing = sortable_table(pd.DataFrame([{"experiment": "x", "fd": float("nan")}])).records[0].data
    assert missing == {"experiment": "x", "fd": None}  # an unscored experiment: an empty cell, not NaN


def test_the_terminal_gets_the_same_tables_as_markdown():
    table = board(config_columns=2)
    markdown = leaderboard_markdown(table)
    headers = [block.splitlines()[0] for block in markdown.split("\n\n")]
    assert len(headers) == len(leaderboard_tables(table)) == 7
    assert "config.training.field1" in headers[-1] and "0.1235" in markdown


def test_a_board_without_differences_or_extra_figures_has_only_the_tables_of_its_columns():
    table = pd.DataFrame([{"experiment": "only", "status": "scored", "fd": 1.5}])
    assert leaderboard_tables(table) == {"leaderboard": ["experiment", "fd"], "leaderboard_runs": ["experiment", "status"]}


def test_the_ranking_lists_the_scored_best_first_then_the_unscored():
    table = pd.DataFrame([
        {"experiment": "b", "status": "scored", "grade": "poor", "fd_ratio": 12.0, "best_checkpoint": "step_000020"},
        {"experiment": "a", "status": "scored", "grade": "good", "fd_ratio": 1.25, "best_checkpoint": "step_006000"},
        {"experiment": "c", "status": "scored", "grade": "no verdict", "fd_ratio": float("nan"),
         "best_checkpoint": "step_000010"},
        {"experiment": "d", "status": UNSCORED, "grade": None, "fd_ratio": float("nan"), "best_checkpoint": None}])
    assert ranking_markdown(table).splitlines() == [
        "1. **a**: good, FD 1.25× the real floor (step_006000)",
        "2. **b**: poor, FD 12× the real floor (step_000020)",
        "3. **c**: no verdict, no FD (step_000010)",
        "", f"{UNSCORED} (not scored yet, or the scoring failed): d"]


def scores_of(rows: dict[str, dict]) -> pd.DataFrame:
    return pd.DataFrame([{"name": name, "step": step, **values}
                         for (name, step), values in zip([("step_000010", 10), ("real_floor", None)], rows.values())])


def test_every_score_of_a_real_board_shows_the_mixtures_and_inception_ones_included():
    """A 2-D mixture's scores (modes, hq_fraction, reverse_kl) and the Inception columns have no place in TABLES:
    they land in `leaderboard_metrics` tables rather than nowhere."""
    mixture = scores_of({"g": {"modes": 7, "hq_fraction": 0.81, "reverse_kl": 0.12},
                         "f": {"modes": 8, "hq_fraction": 0.95, "reverse_kl": 0.01}})
    digits = scores_of({"g": {"fd": 3.0, "kid": 0.002, "precision": 0.8, "recall": 0.6, "fd_inception": 40.0},
                        "f": {"fd": 1.5, "kid": -0.001, "precision": 0.9, "recall": 0.9, "fd_inception": 5.0}})
    evaluation = {"best_metric": "fd", "best_direction": "min"}
    configs = {"digits": {"evaluation": evaluation, "seed": 12345},
               "ring": {"evaluation": {"best_metric": "modes", "best_direction": "max"}, "seed": 7}}
    table = build_leaderboard({"digits": digits, "ring": mixture}, configs)
    tables = leaderboard_tables(table)
    shown = {c for columns in tables.values() for c in columns}
    for score in ("fd", "kid", "precision", "recall", "fd_inception", "modes", "hq_fraction", "reverse_kl"):
        assert score in shown, (score, tables)
    assert all(len(columns) <= 1 + METRICS_TABLE_WIDTH for key, columns in tables.items() if "metrics" in key)
    seeds = {r.data["experiment"]: r.data["config.seed"] for r in sortable_table(table[tables["config_differences"]]).records}
    assert seeds == {"digits": 12345, "ring": 7}  # whole numbers stay exact, never 1.234e+04
