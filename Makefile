# The two commands of the README:
#   make report   run the profiling harness on its embedded default and write reports/
#   make test     run the test suite (what CI runs, through .ci/run)
# Each creates .venv and installs the pinned versions (constraints.txt) when needed.
# GPU machines (their own CUDA build of PyTorch, no network):
#   make gpu-report [OUT=DIR]  the gpu-quick suite with the machine's own Python (no venv, no
#                       download), from the checkout; ~8 minutes on an H100/H200; writes its bundle
#                       (<= 8 files) into DIR (default reports/gpu/<device>/), caches elsewhere
#   make compat-check   the oldest supported torch/triton (a second environment); writes
#                       reports/compat-check.md (too big for CI: a second torch download)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.alexnet-fast-installed
PYTEST_WORKERS ?= 2

.PHONY: report test install clean gpu-report compat-check

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

report: $(STAMP)
	$(VENV)/bin/alexnet-fast info
	$(VENV)/bin/alexnet-fast bench --output-dir reports
	$(VENV)/bin/alexnet-fast report --output-dir reports

test: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) --durations=15

clean:
	rm -rf $(VENV) .pytest_cache

# The machine's own Python (PYTHON=... or the active environment's python3), run from the
# checkout: nothing installed, nothing downloaded. OUT=DIR: the bundle's folder.
OUT ?=
gpu-report:
	PYTHONPATH=$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} $(PYTHON) -m alexnet_fast bench --suite gpu-quick $(if $(OUT),--output-dir $(OUT))

# A second environment with the oldest versions pyproject declares; COMPAT_VENV=/path reuses one.
COMPAT_VENV ?= .venv-compat
COMPAT_PINS := torch==2.11.0 torchvision==0.26.0 triton==3.6.0
COMPAT_DEPS := numpy pandas matplotlib tqdm nvidia-ml-py pytest pytest-xdist pytest-benchmark

compat-check:
	test -x $(COMPAT_VENV)/bin/python || $(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -c "import torch, triton, torchvision" 2>/dev/null || \
		$(COMPAT_VENV)/bin/python -m pip install -q --disable-pip-version-check $(COMPAT_PINS) $(COMPAT_DEPS)
	PYTHONPATH=$(CURDIR) $(COMPAT_VENV)/bin/python -m alexnet_fast.profiling.compat --output reports/compat-check.md
