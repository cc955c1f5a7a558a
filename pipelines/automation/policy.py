"""Declarative automation: rerun exactly what a change affects, in one run, and only when something changed.

`eager()` reacts to any new materialization or observation of a dependency, even one with an
identical data version (saving a YAML unchanged, re-ingesting the same files). This condition
reacts to a *data version change* instead, and never feeds a dependency whose blocking check failed
(`deps_checked`).

Like `eager()`, a stage is also requested when one of its dependencies will be requested this tick,
and Dagster puts one tick's requests for a partition into one run: a new or edited experiment runs
every stage it affects in a single run (then the unpartitioned leaderboard in a second one, as
Dagster cannot run assets with different partitions together), not one run per layer.

The trade-off: a stage downstream of a rerun stage runs in that same run even if its upstream's
output came out identical (chaining is decided before anything ran). That is cheap here: every
stage is seconds except training, and `gan_checkpoints` resumes its content-keyed run directory
instead of training again. The other way, one run per layer, waited for each layer's data version
and cost a run start-up (and a tick) per layer.

A stage materialized in the same run as its upstream does not rerun on the next tick: the trigger
below carries no timing metadata, so when it (upstream's data version changed) and the reset
(this stage newly updated) are both true on one tick, `SinceCondition` lets the reset win.

New experiment files are not trained by themselves unless `GAN_TRAIN_NEW_EXPERIMENTS=1` (or
`build_definitions(train_new_experiments=True)`): opening `make ui` on a folder of YAML files should not
start hours of training nobody asked for. A new experiment waits for a click ("Materialize all" on the
`experiment` job or the `gan` group); once materialized, its edits rerun exactly what they affect.
"""

import os

import dagster as dg

from gan_assets.assets.config_sources import config_sources

AC = dg.AutomationCondition


def train_new_experiments_by_default() -> bool:
    return os.environ.get("GAN_TRAIN_NEW_EXPERIMENTS", "").strip().lower() in ("1", "true", "yes", "on")


def deps_checked() -> dg.AutomationCondition:
    """Every dependency's blocking checks passed, or the dependency runs in this stage's run.

    Dagster's `all_deps_blocking_checks_passed()` lets a check through only if the *check* will be
    requested, and ours have no condition of their own: they ride along with their asset's run. So a
    stage would wait a tick (a run) behind `gan_checkpoints`. A dependency requested this tick brings
    its blocking checks into the same run, and there a failing one stops this stage's step.
    """
    checks_passed = AC.all_checks_match(AC.check_passed(), blocking_only=True).with_label("blocking_checks_passed")
    return AC.all_deps_match(checks_passed | AC.will_be_requested()).with_label("all_deps_checked_or_run_with_it")


def rerun_on_change(train_new_experiments: bool = False) -> dg.AutomationCondition:
    changed = AC.any_deps_match(AC.data_version_changed()).with_label("any_dep_data_version_changed")
    # Chains this stage into the run of a dependency requested on this very tick (as eager() does).
    chained = AC.any_deps_match(AC.will_be_requested()).with_label("any_dep_requested_this_tick")
    condition = (
        (AC.newly_missing() | changed | chained).since_last_handled()
        & ~AC.any_deps_missing()  # ignores deps that will be requested this tick
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
        & deps_checked()
    )
    if not train_new_experiments:  # a never-materialized asset waits for a user's click
        condition = condition & ~AC.missing().with_label("materialized_once")
    return condition.with_label("rerun_on_change")


def automated(assets: list[dg.AssetsDefinition], train_new_experiments: bool = False) -> list[dg.AssetsDefinition]:
    condition = rerun_on_change(train_new_experiments)
    return dg.map_asset_specs(lambda spec: spec.replace_attributes(automation_condition=condition), assets)


# Runs in `dagster dev` without anyone switching it on; failed runs are retried by the instance's
# run_retries (pipelines/dagster.yaml), except those that failed on their input (recovery.py).
automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation", target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30, run_tags={"dagster/max_retries": "2"},
)

__all__ = ["automated", "automation_sensor", "config_sources", "rerun_on_change"]
