# Two commands do all set-up: `make demo` and `make test`. Each creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip install -q torch==2.13.0 || true
	touch $(STAMP)

.PHONY: venv demo test bench clean browser
venv: $(STAMP)

# The report test opens the HTML in a real headless browser: install Debian's chromium when
# missing and we may (root); otherwise that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  >/dev/null 2>&1; } || echo "chromium could not be installed: the browser test will skip"

demo: $(STAMP)
	$(BIN)/python -m cachesim.demo

test: $(STAMP) browser
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python bench/replay_vs_libcachesim.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
