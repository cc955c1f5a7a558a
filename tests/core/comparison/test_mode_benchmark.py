"""The mode benchmark's table (`make bench-modes` writes it beside PacGAN's Table 1 rows) and its results file."""

import json

import pytest

from gan_assets.core.comparison.mode_benchmark import markdown_table, read_results, summarise


def ring8_row() -> dict:
    return summarise("ring8", "ring8/recommended", [0, 1], [{"modes": 8, "hq_fraction": 0.99, "reverse_kl": 0.004},
                                                            {"modes": 8, "hq_fraction": 0.98, "reverse_kl": 0.006}],
                     900, 61.0)


def test_a_configuration_sits_beside_pacgans_rows_with_mean_and_spread():
    table = markdown_table([ring8_row()])
    assert "| ring8 | ring8/recommended | 8.0 ± 0.0 | 98.5 ± 0.5% | 0.005 ± 0.001 | 900 | 61 | met |" in table
    assert "| ring8 | published GAN (PacGAN Table 1, ~400k steps) | 6.3 ± 0.5 | 98.2% | 0.45 |" in table


def test_results_round_trip_and_a_foreign_file_is_named(tmp_path):
    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps(ring8_row()) + "\n")
    assert read_results(results) == [ring8_row()]
    results.write_text('{"dataset": "ring8"}\n')  # a half-written or foreign file
    with pytest.raises(ValueError, match=f"{results}:1 is not a bench_modes result row"):
        read_results(results)
