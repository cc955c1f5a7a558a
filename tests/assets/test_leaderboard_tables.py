"""The leaderboard page's tables: every column of the board in exactly one table, each narrow enough to show whole."""

import pandas as pd

from gan_assets.assets.leaderboard import CONFIG_TABLE_WIDTH, TABLES, leaderboard_tables


def board(config_columns: int) -> pd.DataFrame:
    columns = [c for table in TABLES.values() for c in table if c != "experiment"]
    rows = [{"experiment": name, **{c: 0.123456 for c in columns},
             **{f"config.training.field{i}": f"{name}-{i}" for i in range(config_columns)}} for name in ("a", "b")]
    return pd.DataFrame(rows)


def header(markdown: str) -> list[str]:
    return [cell.strip() for cell in markdown.splitlines()[0].strip("|").split("|")]


def test_every_column_shows_in_exactly_one_table_each_led_by_the_experiment():
    table = board(config_columns=CONFIG_TABLE_WIDTH + 2)
    tables = leaderboard_tables(table)
    assert list(tables) == ["leaderboard", "leaderboard_more", "config_differences", "config_differences_2"]
    headers = {key: header(markdown) for key, markdown in tables.items()}
    assert all(h[0] == "experiment" for h in headers.values())
    shown = [c for h in headers.values() for c in h[1:]]
    assert sorted(shown) == sorted(c for c in table.columns if c != "experiment")  # each once
    assert max(len(h) for h in headers.values()) <= max(len(t) for t in TABLES.values())
    assert header(tables["leaderboard"])[4:6] == ["grade", "fd_ratio"]  # the verdict before the scores
    assert "0.1235" in tables["leaderboard"]  # 4 significant digits


def test_a_board_without_differences_or_extra_figures_has_only_the_headline_table():
    table = pd.DataFrame([{"experiment": "only", "status": "scored", "fd": 1.5}])
    assert list(leaderboard_tables(table)) == ["leaderboard"]
    assert header(leaderboard_tables(table)["leaderboard"]) == ["experiment", "status", "fd"]
