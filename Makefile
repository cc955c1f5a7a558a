# Two commands do everything on a fresh machine: `make run` and `make test` (each installs first).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXPERIMENT ?= experiments/digits-dcgan.yaml
# The torch device (auto, cpu, cuda, cuda:N): the machine's, not the experiment's (`make run DEVICE=cuda`).
# Empty: GAN_DEVICE from the environment, else auto.
DEVICE ?=
DEVICE_FLAG := $(if $(DEVICE),--device $(DEVICE))
# Training processes (torchrun ranks through Dagster Pipes; one per GPU): `make run NPROC=2`. Empty: GAN_TRAIN_NPROC
# from the environment, else training in the Dagster step's own process.
NPROC ?=
NPROC_FLAG := $(if $(NPROC),--nproc $(NPROC))
# FRESH=1: retrain from scratch in a new run directory (then rescore and redraw), even when every stage is current.
FRESH ?=
FRESH_FLAG := $(if $(filter 1 true yes on TRUE YES ON True Yes On,$(FRESH)),--fresh)
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home
# The pipeline's storage root (GAN_STORAGE_ROOT, else data): the local servers keep their files under it.
STORAGE_ROOT ?= $(or $(GAN_STORAGE_ROOT),data)

THREE_GAMES := experiments/digits-dcgan.yaml experiments/digits-minimax.yaml experiments/digits-maximum-likelihood.yaml
FAMILIES := experiments/digits-dcgan.yaml experiments/digits-vae.yaml experiments/digits-fvbn.yaml experiments/digits-real-nvp.yaml

.PHONY: help install run compare compare-families test ui bench bench-modes gallery sample-export clean-data mlflow tensorboard

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 18

# The stamp is rebuilt when pyproject.toml changes; torch/torchvision come from this machine's disk. Dagster's
# packages are pinned together in pyproject.toml (one release series), so pip resolves them without conflict.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed  ## create .venv and install the project with its test tools

$(DAGSTER_HOME)/dagster.yaml: pipelines/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp pipelines/dagster.yaml $@

# EXPERIMENT is quoted: a path with spaces is one file.
run: install $(DAGSTER_HOME)/dagster.yaml  ## train, score and draw an experiment (EXPERIMENT=, FRESH=1, DEVICE=cuda, NPROC=N)
	$(PY) -m pipelines.cli.run_experiment "$(EXPERIMENT)" $(DEVICE_FLAG) $(NPROC_FLAG) $(FRESH_FLAG)

# Mode-collapse benchmark on PacGAN's ring8 / grid25 (one JSON line per configuration): ONLY='ring8/*' for a subset.
ONLY ?= *
bench-modes: install  ## PacGAN's ring8/grid25 mode-collapse suite (ONLY='ring8/*')
	OPENBLAS_NUM_THREADS=1 $(PY) benchmarks/bench_modes.py --only '$(ONLY)'

# The experiment's HTML gallery: its path (and the page in a browser, where there is one).
gallery: install  ## print (and open) the experiment's HTML gallery
	$(PY) -m pipelines.cli.gallery "$(EXPERIMENT)" --open

# N samples of an exported generator as a PNG grid, with plain torch (pipelines/cli/sample_export.py). EXPORT: an
# export folder; empty: EXPERIMENT's newest, under data/experiments/<name>/export/.
EXPORT ?=
N ?= 64
sample-export: install  ## a PNG grid of N samples from an exported generator (EXPORT=<folder> N=64)
	$(PY) -m pipelines.cli.sample_export $(if $(EXPORT),"$(EXPORT)",--experiment "$(EXPERIMENT)") --n $(N)

# Experiment files, then the leaderboard that compares them: `make compare EXPERIMENTS="experiments/a.yaml b.yaml"`;
# by default the tutorial's three generator costs on digits.
EXPERIMENTS ?= $(THREE_GAMES)
compare: install $(DAGSTER_HOME)/dagster.yaml  ## EXPERIMENTS= (default: the tutorial's three costs), then the leaderboard
	$(PY) -m pipelines.cli.run_experiment $(EXPERIMENTS) --leaderboard $(DEVICE_FLAG)

# The tutorial's §2 model families (GAN, VAE, FVBN, Real NVP) on digits: one JSON line each, then the leaderboard
# and the claims on stderr (minutes per family on 2 CPU cores, the FVBN's sampling the longest; see the README).
compare-families: install $(DAGSTER_HOME)/dagster.yaml  ## GAN, VAE, FVBN and Real NVP on digits, then the leaderboard
	OPENBLAS_NUM_THREADS=1 $(PY) -m pipelines.cli.compare_families $(FAMILIES) $(DEVICE_FLAG)

# Training speed side by side with the canonical DCGAN loop (JSON lines), busy-machine ratios, then the rest.
bench: install  ## training speed beside the canonical DCGAN loop, metrics, scoring, ingestion
	OPENBLAS_NUM_THREADS=1 $(PY) benchmarks/bench_canonical.py
	OPENBLAS_NUM_THREADS=1 $(PY) benchmarks/bench_canonical.py --busy
	OPENBLAS_NUM_THREADS=1 $(PY) benchmarks/bench_metrics.py
	OPENBLAS_NUM_THREADS=1 $(PY) benchmarks/bench_scoring.py
	$(PY) benchmarks/bench_ingest.py

# Two workers (pytest-xdist), one per core, a test file each at a time (module fixtures stay in one process).
test: install  ## install, then every test (import contracts, UI test included)
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadfile

ui: install $(DAGSTER_HOME)/dagster.yaml  ## the Dagster UI on http://127.0.0.1:3000
	$(if $(DEVICE),GAN_DEVICE=$(DEVICE)) $(if $(NPROC),GAN_TRAIN_NPROC=$(NPROC)) $(VENV)/bin/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

# The MLflow tracking server, runs and model registry in SQLite. --artifacts-destination (artifact serving is on by
# default): clients upload files through the server over HTTP, so a trainer on another machine needs no shared disk
# (a --default-artifact-root path would have every client write to that path itself).
MLFLOW_PORT ?= 5000
MLFLOW_DIR = $(abspath $(STORAGE_ROOT))/mlflow
mlflow: install  ## MLflow server on 127.0.0.1:5000 (MLFLOW_PORT=); `MLFLOW_TRACKING_URI=http://127.0.0.1:5000 make run` tracks
	mkdir -p "$(MLFLOW_DIR)/artifacts"
	$(VENV)/bin/mlflow server --host 127.0.0.1 --port $(MLFLOW_PORT) --workers 1 \
		--backend-store-uri "sqlite:///$(MLFLOW_DIR)/mlflow.db" --artifacts-destination "$(MLFLOW_DIR)/artifacts"

# Every run's event files (core/telemetry/tensorboard.py) lie under its run directory, so the experiments folder
# shows them all, each named experiment/runs/run_key/tensorboard (its scores: .../tensorboard/scores).
TB_PORT ?= 6006
tensorboard: install  ## TensorBoard of every run's curves, grids and scores on 127.0.0.1:6006 (TB_PORT=)
	$(VENV)/bin/tensorboard --logdir "$(STORAGE_ROOT)/experiments" --host 127.0.0.1 --port $(TB_PORT)

clean-data:  ## delete every materialized output and the local Dagster instance
	rm -rf data/experiments data/dagster_home
