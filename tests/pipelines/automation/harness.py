"""Drive declarative automation without a daemon: observe, evaluate, materialize, repeat.

Each `settle()` observes the experiment files once (through config_change_sensor, as `make ui`
does, or through the observe_config job), then ticks the automation conditions (cursor threaded
through) and launches the runs each tick requests, grouped into runs as the automation sensor
groups them, until a tick requests nothing. It returns every asset key materialized on the way, so
a test can assert the exact set an edit reran, and counts the runs in `last_runs`.
"""

import datetime

import dagster as dg
from dagster._core.definitions.automation_tick_evaluation_context import build_run_requests

from pipelines.definitions import build_definitions


class AutomationHarness:
    def __init__(self, storage_root, experiments_dir, instance: dg.DagsterInstance, train_new_experiments: bool = True,
                 observe_with: str = "sensor"):
        assert observe_with in ("sensor", "job"), observe_with
        self.defs = build_definitions(storage_root, experiments_dir, train_new_experiments)
        self.instance = instance
        self.observe_with = observe_with
        self.cursor = None
        self.sensor_cursors: dict[str, str | None] = {}
        self.run_requests: list[dg.RunRequest] = []  # what the latest tick would launch
        self.last_runs = 0  # runs launched by the latest settle()
        self.clock = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
        self.graph = self.defs.resolve_asset_graph()
        # The first evaluation only records the baseline (Dagster's initial-evaluation rule), so it
        # happens before any experiment is registered, as when `dagster dev` starts on a new home.
        assert not self.tick()

    def add_experiment(self, key: str) -> None:
        """What the experiment-files sensor does for a new YAML file."""
        self.instance.add_dynamic_partitions("experiments", [key])

    def run_sensor(self, name: str) -> dg.SensorResult:
        """One tick of a sensor, its cursor threaded through, applied to the instance as the daemon does."""
        context = dg.build_sensor_context(instance=self.instance, cursor=self.sensor_cursors.get(name),
                                          resources={"store": self.defs.resources["store"]})
        data = self.defs.resolve_sensor_def(name).evaluate_tick(context)
        assert not data.run_requests, f"{name} asked for runs: {data.run_requests}"
        self.sensor_cursors[name] = data.cursor
        self.apply(data.asset_events, data.dynamic_partitions_requests)
        return data

    def apply(self, asset_events, partition_requests) -> None:
        """dagster/_daemon/sensor.py: runless asset events first, then dynamic partition requests."""
        for event in asset_events or []:
            self.instance.report_runless_asset_event(event)
        for request in partition_requests or []:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            else:
                for key in request.partition_keys:
                    self.instance.delete_dynamic_partition(request.partitions_def_name, key)

    def observe(self) -> None:
        if self.observe_with == "sensor":
            self.run_sensor("config_change_sensor")
            return
        result = self.defs.resolve_job_def("observe_config").execute_in_process(instance=self.instance)
        assert result.success

    def tick(self) -> dict[str, set[str]]:
        self.clock += datetime.timedelta(seconds=30)  # cron observation ticks are not what we test
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor,
                                                   evaluation_time=self.clock,
                                                   asset_selection=dg.AssetSelection.all())
        self.cursor = result.cursor
        # The automation sensor's own grouping of one tick's requests into runs (one per partition).
        self.run_requests = list(build_run_requests(result._requested_subsets, self.graph, None, False))
        requested: dict[str, set[str]] = {}
        for key in self.graph.materializable_asset_keys:
            for partition in result.get_requested_partitions(key):
                requested.setdefault(partition, set()).add(key.to_user_string())
        return requested

    def launch(self, run_request: dg.RunRequest) -> None:
        job = self.defs.resolve_implicit_global_asset_job_def()
        job.execute_in_process(instance=self.instance, partition_key=run_request.partition_key,
                               asset_selection=list(run_request.asset_selection))

    def materialize(self, requested: dict[str, set[str]]) -> None:
        """Materialize {partition: asset keys} by hand, one run per partition (a user's click)."""
        for partition, keys in requested.items():
            self.launch(dg.RunRequest(partition_key=partition,
                                      asset_selection=[dg.AssetKey.from_user_string(k) for k in keys]))

    def settle(self, max_ticks: int = 8) -> dict[str, list[str]]:
        """Observe, then run ticks until quiet; the assets materialized per partition, in order."""
        self.observe()
        ran: dict[str, list[str]] = {}
        self.last_runs = 0
        for _ in range(max_ticks):
            requested = self.tick()
            if not requested:
                return ran
            for run_request in self.run_requests:
                self.launch(run_request)
                self.last_runs += 1
            for partition, keys in requested.items():
                ran.setdefault(partition, []).extend(sorted(keys))
        raise AssertionError(f"automation did not settle in {max_ticks} ticks: {ran}")
