# Two commands on a fresh machine:  make demo  and  make test
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo lab test test-fast notebooks course-time world bench clean install

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned (a plain 'torch' would pull a newer build)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/mmkit demo

# the course in JupyterLab, offline, opened on notebook 00 (Ctrl+C stops it)
lab: install
	$(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root,) \
	  notebooks/00_quickstart.ipynb

# the whole suite: unit tests, then every notebook re-executed by nbval
test: install
	$(PY) -m pytest tests notebooks --nbval-lax -q

# the unit tests without those marked slow or subprocess (pyproject.toml lists the markers)
test-fast: install
	$(PY) -m pytest tests -q -x -m "not slow and not subprocess"

notebooks: install   ## re-run every notebook in place (commit the outputs)
	for nb in notebooks/*.ipynb; do \
	  $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=600 "$$nb" || exit 1; done

course-time: install   ## every notebook from an empty cache, timed (results in benchmarks/)
	$(PY) benchmarks/bench_course.py

world: install
	$(VENV)/bin/mmkit world --out data/world --n 1000

bench: install
	for b in benchmarks/bench_*.py; do $(PY) "$$b" || exit 1; done

clean:
	rm -rf out .pytest_cache
