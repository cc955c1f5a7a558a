"""Telemetry: what a training run says while it trains, and to whom.

`core/training/observers.py` defines the events (start, progress, heartbeat, checkpoint, end) and the fan-out that
keeps a failing observer from stopping training; this folder holds the observers that need more than the training
layer: the checkpoint grid (drawn as the gallery draws it), the live file a trainer process writes for the Dagster
side to read, TensorBoard event files, and the MLflow tracking client. None of it imports Dagster: the assets and
the trainer entry point choose which observers a run gets.
"""
