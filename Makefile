# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv when missing and installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

.PHONY: demo test lint sysdeps venv clean bench

$(STAMP): pyproject.toml clients/python/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: anything else would pull GBs of CUDA wheels.
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e clients/python
	$(PY) -m pip install -q -e ".[dev]" "torch==2.13.0"
	# openpi's own client, for the wire-compatibility test; --no-deps: its numpy<2 pin is not a need
	$(PY) -m pip install -q --no-deps "openpi-client==0.1.2"
	@$(PY) -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') else f'torch {v} installed; expected 2.13.0')"
	@touch $(STAMP)

venv: $(STAMP) sysdeps

# Headless rendering (Mesa's software EGL) and Chromium for the report test.
sysdeps:
	@bash scripts/install_sysdeps.sh

demo: venv
	$(VENV)/bin/actionimages demo --out outputs/demo

test: venv
	$(VENV)/bin/ruff check src tests benchmarks scripts clients
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadfile tests

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks scripts clients
	$(VENV)/bin/ruff format --check src tests benchmarks scripts

# Benchmarks write their tables under docs/results/ (see docs/RESULTS.md for the full commands).
bench: venv
	OMP_NUM_THREADS=1 $(PY) benchmarks/codec.py --quick
	OMP_NUM_THREADS=1 $(PY) benchmarks/sim.py --seeds 20
	OMP_NUM_THREADS=1 $(PY) benchmarks/data.py --quick
	OMP_NUM_THREADS=1 $(PY) benchmarks/model.py speed --config tiny
	OMP_NUM_THREADS=1 $(PY) benchmarks/model.py sample --config tiny --num-steps 8
	OMP_NUM_THREADS=1 $(PY) benchmarks/policy.py --calls 5 --steps 4 8 --threads 1

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache
