"""Where trainings are tracked in MLflow: a property of the deployment (which server), never of an experiment.

Off by default and never required: with no `tracking_uri` and no `MLFLOW_TRACKING_URI` nothing is tracked. A thin
resource over `mlflow.MlflowClient` (core/telemetry/tracking.py) rather than the dagster-mlflow integration: that
package pins dagster to one exact release (as dagster-k8s does, so every Dagster upgrade waits for it), drives
MLflow's process-global state (`mlflow.set_tracking_uri`, `set_experiment`, `start_run`, and it writes its
`env_vars` into `os.environ`), and keys MLflow runs by the Dagster run id, whereas one training here must stay one
MLflow run across resumes, retries and the scoring stage's own process.
"""

from __future__ import annotations

import os

import dagster as dg

from gan_assets.core.telemetry.tracking import DEFAULT_EXPERIMENT, TrackingSettings

TRACKING_URI_SETTING = "MLFLOW_TRACKING_URI"  # MLflow's own variable


class MlflowTracking(dg.ConfigurableResource):
    """The MLflow tracking server trainings log to (empty: `MLFLOW_TRACKING_URI`; still empty: off) and the MLflow
    experiment that holds their runs."""

    tracking_uri: str = ""
    experiment_name: str = DEFAULT_EXPERIMENT

    def settings(self) -> TrackingSettings | None:
        """Where to track, or None when tracking is off."""
        uri = self.tracking_uri.strip() or os.environ.get(TRACKING_URI_SETTING, "").strip()
        return TrackingSettings(tracking_uri=uri, experiment_name=self.experiment_name) if uri else None


__all__ = ["MlflowTracking", "TRACKING_URI_SETTING"]
