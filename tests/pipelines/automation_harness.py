"""Drive declarative automation without a daemon: observe, evaluate, materialize, repeat.

Each `settle()` observes the experiment files once, then ticks the automation conditions (cursor
threaded through) and executes what each tick requests, until a tick requests nothing. It returns
every asset key materialized on the way, so a test can assert the exact set an edit reran.
"""

import datetime

import dagster as dg

from pipelines.definitions import build_definitions


class AutomationHarness:
    def __init__(self, storage_root, experiments_dir, instance: dg.DagsterInstance, train_new_experiments: bool = True):
        self.defs = build_definitions(storage_root, experiments_dir, train_new_experiments)
        self.instance = instance
        self.cursor = None
        self.clock = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
        self.graph = self.defs.resolve_asset_graph()
        # The first evaluation only records the baseline (Dagster's initial-evaluation rule), so it
        # happens before any experiment is registered, as when `dagster dev` starts on a new home.
        assert not self.tick()

    def add_experiment(self, key: str) -> None:
        """What the experiment-files sensor does for a new YAML file."""
        self.instance.add_dynamic_partitions("experiments", [key])

    def observe(self) -> None:
        result = self.defs.resolve_job_def("observe_config").execute_in_process(instance=self.instance)
        assert result.success

    def tick(self) -> dict[str, set[str]]:
        self.clock += datetime.timedelta(seconds=30)  # cron observation ticks are not what we test
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor,
                                                   evaluation_time=self.clock,
                                                   asset_selection=dg.AssetSelection.all())
        self.cursor = result.cursor
        requested: dict[str, set[str]] = {}
        for key in self.graph.materializable_asset_keys:
            for partition in result.get_requested_partitions(key):
                requested.setdefault(partition, set()).add(key.to_user_string())
        return requested

    def materialize(self, requested: dict[str, set[str]]) -> None:
        job = self.defs.resolve_implicit_global_asset_job_def()
        for partition, keys in requested.items():
            selection = [dg.AssetKey.from_user_string(k) for k in keys]
            job.execute_in_process(instance=self.instance, partition_key=partition, asset_selection=selection)

    def settle(self, max_ticks: int = 8) -> dict[str, list[str]]:
        """Observe, then run ticks until quiet; the assets materialized per partition, in order."""
        self.observe()
        ran: dict[str, list[str]] = {}
        for _ in range(max_ticks):
            requested = self.tick()
            if not requested:
                return ran
            self.materialize(requested)
            for partition, keys in requested.items():
                ran.setdefault(partition, []).extend(sorted(keys))
        raise AssertionError(f"automation did not settle in {max_ticks} ticks: {ran}")
