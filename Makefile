# packwatch: two commands on a fresh machine — `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
BSTAMP := $(VENV)/.installed-bench
OUT    ?= out/demo

.PHONY: demo test venv bench bench-balancing bench-soc bench-check typecheck wheel-smoke clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "packwatch needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

$(BSTAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	@touch $@

venv: $(STAMP)

## run the simulated pack on the virtual board, log it over the virtual serial port, plot it
demo: $(STAMP)
	$(BIN)/packwatch demo --out $(OUT)

## the layer contract, every test tier: T0 (CPython + fakes), T1 (real MicroPython), T2 (virtual board end to end), types
# the emulated RP2040 (tests/t3, hil/rp2040): rp2040js pinned by hil/rp2040/package-lock.json, where node is
NODE_DEPS := $(if $(shell command -v npm 2>/dev/null),hil/rp2040/node_modules/.package-lock.json)
hil/rp2040/node_modules/.package-lock.json: hil/rp2040/package-lock.json
	npm ci --prefix hil/rp2040 --no-audit --no-fund

test: $(STAMP) $(NODE_DEPS)
	$(BIN)/lint-imports --no-cache  # the layer contract: pyproject.toml [tool.importlinter], docs/architecture.md
	$(BIN)/python -m pytest -n 2 -q tests
	$(MAKE) --no-print-directory typecheck

# firmware types against each port's MicroPython stubs, each in its own folder (they share module names)
STUBS_VER := 1.29.0.post1
STDLIB_STUBS_VER := 1.29.0.post2
$(VENV)/stubs/%/.installed: $(STAMP)
	$(BIN)/pip install -q --no-deps --target $(VENV)/stubs/$* micropython-$*-stubs==$(STUBS_VER) micropython-stdlib-stubs==$(STDLIB_STUBS_VER)
	@touch $@

typecheck: $(VENV)/stubs/rp2/.installed $(VENV)/stubs/esp32/.installed
	for port in rp2 esp32; do \
	  echo "mypy: firmware against micropython-$$port-stubs"; \
	  MYPYPATH=$(VENV)/stubs/$$port $(BIN)/mypy --config-file firmware/mypy.ini \
	    --custom-typeshed-dir $(VENV)/stubs/$$port --cache-dir $(VENV)/.mypy-$$port firmware || exit 1; \
	done

# the built wheel alone, in an empty venv, simulates and stages a deploy (CI runs it after `make test`)
wheel-smoke: $(STAMP)
	PY=$(BIN)/python PYTHON=$(PYTHON) bash .ci/wheel-smoke

## benchmarks (timings never live in tests): results in bench/results/ and docs/benchmarks.md
# the benchmarks' own plumbing checks first (they need the bench extra, so they are not in `make test`)
bench-check: $(BSTAMP)
	$(BIN)/python -m pytest -q -n 0 -p no:cacheprovider bench/soc/test_plumbing.py bench/test_run_all.py

bench: bench-check
	$(BIN)/python -m bench.run_all

# multi-day balancing on the virtual board (~1 min of wall time per simulated day and pack on a quiet
# machine: its own target): the defaults on one pack, then the faster settings on five packs
bench-balancing: $(BSTAMP)
	$(BIN)/python bench/hil/bench_balancing.py --days 7
	$(BIN)/python bench/hil/bench_balancing.py --days 8 --seeds 1-5 --jobs 2 --set bal_max_cells=8 --set bal_dsg=1 --set bal_adjacent=1
	$(BIN)/python -c 'import bench.run_all as b; b.stitch()'

bench-soc: bench-check
	PYBAMM_DISABLE_TELEMETRY=true $(BIN)/python -m bench.soc.run
	$(BIN)/python -c 'import bench.run_all as b; b.stitch()'


# build outputs too: a stale build/lib copy of every module doubles grep hits and can shadow the sources
clean:
	rm -rf $(VENV) out .pytest_cache build dist *.egg-info host/*.egg-info
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
