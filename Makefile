# Two commands do all set-up: `make demo` and `make test`. Each creates .venv when it is missing.
# `make demo` installs the package alone; `make test` adds the test tools and the `torch` extra
# (only the dlrm-pt reader tests need it: they write .pt files for `torch.load`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# torch's CPU wheel where pip finds one (this machine has 2.13.0+cpu); override with TORCH=torch
TORCH ?= torch==2.13.0

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test,torch]' '$(TORCH)' || { \
	  echo "torch could not be installed: the dlrm-pt reader tests will skip"; \
	  $(BIN)/python -m pip install -q -e '.[test]'; }
	touch $(TEST_STAMP)

.PHONY: venv demo test bench clean browser azurite
venv: $(STAMP)

# The report test opens the HTML in a real headless browser: install Debian's chromium when
# missing and we may (root); otherwise that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  >/dev/null 2>&1; } || echo "chromium could not be installed: the browser test will skip"

# The az:// tests run against Azurite (Microsoft's Azure Storage emulator, an npm package),
# installed into .venv/azurite when npm is on PATH (npm picks the newest 3.x that the local
# node runs: 3.35 on node 20); otherwise those tests skip and say why.
AZURITE := $(VENV)/azurite/node_modules/.bin/azurite-blob
azurite: $(STAMP)
	@test -x $(AZURITE) || { command -v npm >/dev/null 2>&1 && timeout 300 npm install --silent --no-audit \
	  --no-fund --fetch-timeout=60000 --fetch-retries=1 --prefix $(VENV)/azurite azurite@3 >/dev/null 2>&1; } || \
	  echo "azurite could not be installed (npm missing or failed): the az:// tests will skip"

demo: $(STAMP)
	$(BIN)/python -m cachesim.demo

# Then a small slice again with the JIT off (NUMBA_DISABLE_JIT=1, about 35 s): the kernels run
# as plain Python against the oracles, so code paths that exist only without numba run too
JIT_OFF_TESTS := tests/test_trace_derived.py tests/test_batch.py tests/test_fbgemm_cache.py \
	tests/test_policies_core.py tests/test_flags.py
test: $(TEST_STAMP) browser azurite
	$(BIN)/python -m pytest -q -n 2 --dist loadfile
	NUMBA_DISABLE_JIT=1 $(BIN)/python -m pytest -q $(JIT_OFF_TESTS) -k "not golden"

bench: $(TEST_STAMP)
	$(BIN)/python bench/replay_vs_libcachesim.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
