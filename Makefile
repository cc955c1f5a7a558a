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
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home

THREE_GAMES := experiments/digits-dcgan.yaml experiments/digits-minimax.yaml experiments/digits-maximum-likelihood.yaml
FAMILIES := experiments/digits-dcgan.yaml experiments/digits-vae.yaml experiments/digits-fvbn.yaml experiments/digits-real-nvp.yaml

.PHONY: install run compare compare-families test ui bench bench-modes gallery clean-data

# The stamp is rebuilt when pyproject.toml changes; torch/torchvision come from this machine's disk.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps "dagster-k8s==$$($(PY) -c "$$K8S_SERIES")"
	$(PY) -m pip install -q $$($(PY) -c "$$K8S_NEEDS")
	touch $@

# dagster-k8s for Kubernetes (pipelines/k8s.py, tests/pipelines/test_k8s.py): the newest release of the series that goes
# with the installed dagster (0.X+16.* for 1.X.*), without letting it pin dagster back (see pyproject.toml); then what
# it needs besides dagster, with its own bounds (kubernetes<37: the 37 client broke its pod-spec code).
export K8S_SERIES := import dagster; print(f"0.{int(dagster.__version__.split('.')[1]) + 16}.*")
export K8S_NEEDS := from importlib.metadata import requires; print(" ".join(r for r in requires("dagster-k8s") if not r.startswith("dagster")))

install: $(VENV)/.installed

$(DAGSTER_HOME)/dagster.yaml: pipelines/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp pipelines/dagster.yaml $@

run: install $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m pipelines.run_experiment $(EXPERIMENT) $(DEVICE_FLAG) $(NPROC_FLAG)

# Mode-collapse benchmark on PacGAN's ring8 / grid25 (one JSON line per configuration): ONLY='ring8/*' for a subset.
ONLY ?= *
bench-modes: install
	OPENBLAS_NUM_THREADS=1 $(PY) benchmarks/bench_modes.py --only '$(ONLY)'

# The experiment's HTML gallery: its path (and the page in a browser, where there is one).
gallery: install
	$(PY) -m pipelines.gallery $(EXPERIMENT) --open

# The tutorial's three generator costs on digits, then the leaderboard that compares them.
compare: install $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m pipelines.run_experiment $(THREE_GAMES) --leaderboard $(DEVICE_FLAG)

# The tutorial's §2 model families (GAN, VAE, FVBN, Real NVP) on digits: one JSON line each, then the leaderboard
# and the claims on stderr (minutes per family on 2 CPU cores, the FVBN's sampling the longest; see the README).
compare-families: install $(DAGSTER_HOME)/dagster.yaml
	OPENBLAS_NUM_THREADS=1 $(PY) -m pipelines.compare_families $(FAMILIES) $(DEVICE_FLAG)

# Training speed side by side with the canonical DCGAN loop (JSON lines), busy-machine ratios, then the rest.
bench: install
	OPENBLAS_NUM_THREADS=1 $(PY) benchmarks/bench_canonical.py
	OPENBLAS_NUM_THREADS=1 $(PY) benchmarks/bench_canonical.py --busy
	OPENBLAS_NUM_THREADS=1 $(PY) benchmarks/bench_metrics.py
	OPENBLAS_NUM_THREADS=1 $(PY) benchmarks/bench_scoring.py
	$(PY) benchmarks/bench_ingest.py

test: install
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -q

ui: install $(DAGSTER_HOME)/dagster.yaml
	$(if $(DEVICE),GAN_DEVICE=$(DEVICE)) $(if $(NPROC),GAN_TRAIN_NPROC=$(NPROC)) $(VENV)/bin/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

clean-data:
	rm -rf data/experiments data/dagster_home
