"""Declarative automation: rerun exactly what a change affects, and only when something changed.

`eager()` reacts to any new materialization or observation of a dependency, even one with an
identical data version (saving a YAML unchanged, re-ingesting the same files). This condition
reacts to a *data version change* instead, waits for dependencies that will themselves run this
tick (so a change ripples down one layer per tick and each asset runs once), and never feeds a
dependency whose blocking check failed.

New experiment files are not trained by themselves unless `GAN_TRAIN_NEW_EXPERIMENTS=1` (or
`build_definitions(train_new_experiments=True)`): opening `make ui` on a folder of YAML files should not
start hours of training nobody asked for. A new experiment waits for a click ("Materialize all" on the
`experiment` job or the `gan` group); once materialized, its edits rerun exactly what they affect.
"""

import os

import dagster as dg

from gan_assets.config_sources import config_sources

AC = dg.AutomationCondition


def train_new_experiments_by_default() -> bool:
    return os.environ.get("GAN_TRAIN_NEW_EXPERIMENTS", "").strip().lower() in ("1", "true", "yes", "on")


def rerun_on_change(train_new_experiments: bool = False) -> dg.AutomationCondition:
    changed = AC.any_deps_match(AC.data_version_changed()).with_label("any_dep_data_version_changed")
    condition = (
        (AC.newly_missing() | changed).since_last_handled()
        & ~AC.any_deps_missing()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
        & ~AC.any_deps_match(AC.will_be_requested()).with_label("no_dep_requested_this_tick")
        & AC.all_deps_blocking_checks_passed()
    )
    if not train_new_experiments:  # a never-materialized asset waits for a user's click
        condition = condition & ~AC.missing().with_label("materialized_once")
    return condition.with_label("rerun_on_change")


def automated(assets: list[dg.AssetsDefinition], train_new_experiments: bool = False) -> list[dg.AssetsDefinition]:
    condition = rerun_on_change(train_new_experiments)
    return dg.map_asset_specs(lambda spec: spec.replace_attributes(automation_condition=condition), assets)


# Runs in `dagster dev` without anyone switching it on; failed runs are retried by the instance's
# run_retries (pipelines/dagster.yaml).
automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation", target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30, run_tags={"dagster/max_retries": "2"},
)

__all__ = ["automated", "automation_sensor", "config_sources", "rerun_on_change"]
