# The two commands of the README:
#   make report   run the profiling harness on its embedded default and write reports/
#   make test     run the test suite (what CI runs, through .ci/run)
# Each creates .venv and installs the pinned versions (constraints.txt) when needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.alexnet-fast-installed
PYTEST_WORKERS ?= 2

.PHONY: report test install clean

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
