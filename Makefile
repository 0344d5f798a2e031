# Aurora: `make run` starts the server on embedded SQLite; `make test` runs the whole suite.
# Both set up everything they need (a .venv with pinned packages, the npm packages of tests/js).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
JS_STAMP := tests/js/node_modules/.installed-stamp
BENCH_STAMP := bench/node_modules/.installed-stamp
SDK_STAMP := clients/js/node_modules/.installed-stamp
BROWSER_STAMP := tests/browser/node_modules/.installed-stamp
# Parallel test workers (2 cores here); `make test PYTEST_WORKERS=0` runs serially.
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=

.PHONY: run test lint audit bench bench-quick bench-upload soak flaky venv js clean vendor

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt clients/python/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Aurora needs Python 3.11 or newer")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

js: $(JS_STAMP)

$(JS_STAMP): tests/js/package.json tests/js/package-lock.json $(SDK_STAMP)
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(SDK_STAMP): clients/js/package.json clients/js/package-lock.json
	cd clients/js && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(BENCH_STAMP): bench/package.json bench/package-lock.json
	cd bench && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The browser tests' driver (playwright-core, no browser download: they use Debian's chromium).
$(BROWSER_STAMP): tests/browser/package.json tests/browser/package-lock.json
	cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Refresh web/vendor/ from the socket.io-client pinned in tests/browser (see web/vendor/README.md).
vendor: $(BROWSER_STAMP)
	cp tests/browser/node_modules/socket.io-client/dist/socket.io.esm.min.js \
	   tests/browser/node_modules/socket.io-client/dist/socket.io.esm.min.js.map web/vendor/
	cp tests/browser/node_modules/socket.io-client/LICENSE web/vendor/socket.io-client.LICENSE

run: $(STAMP)
	$(PY) app.py

test: $(STAMP) $(JS_STAMP) $(SDK_STAMP) $(BENCH_STAMP) $(BROWSER_STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile -q -rs $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check app.py aurora tests bench tools clients/python

# Known advisories against the pinned runtime packages (pip-audit in its own .venv-audit); skipped with
# the reason, exit 0, when the advisory service cannot be reached.
audit:
	$(PYTHON) tools/audit_dependencies.py

# The benchmark suite of issue 5 (bench/run.py --help): every scenario on Aurora (SQLite and
# PostgreSQL) and the relays (python-socketio on asyncio and on uvloop, Node), 3 runs each, table
# on stdout, JSON in bench/results/; then features on vs off by instruction count
# (bench/callgrind_per_message.py --compare-features) and a short soak.
# `make bench BENCH_ARGS="--scenario s1 --db sqlite --duration 5 --runs 1"` runs a part of it.
BENCH_ARGS ?=
bench: $(STAMP) $(BENCH_STAMP)
	$(PY) bench/run.py $(BENCH_ARGS)
	@# Features on vs off (issue 16, target 6), by instruction count: a 5% difference is below the noise of times.
	@if command -v valgrind >/dev/null 2>&1; then $(PY) bench/callgrind_per_message.py --compare-features; \
	else echo "bench: valgrind is not installed (apt-get install valgrind): features on vs off not measured"; fi
	$(PY) bench/soak.py --duration 60

# Connect/send/sync/disconnect churn from the Node load client (bench/soak_client.mjs); does RSS
# level off? (bench/soak.py --help). An hour by default; `make soak SOAK_ARGS="--duration 1200"`.
SOAK_ARGS ?=
soak: $(STAMP) $(BENCH_STAMP)
	$(PY) bench/soak.py $(SOAK_ARGS)

# The whole suite 5 times in a row (-n 2) beside a CPU hog; reports flaky tests (bench/flaky.py --help).
FLAKY_ARGS ?=
flaky: $(STAMP) $(JS_STAMP) $(BENCH_STAMP)
	$(PY) bench/flaky.py $(FLAKY_ARGS)

# Everything once, small and short (under a minute).
bench-quick: $(STAMP) $(BENCH_STAMP)
	$(PY) bench/run.py --quick $(BENCH_ARGS)

# Server RSS growth while receiving a 100 MB upload, raw and multipart (target < 20 MB).
bench-upload: $(STAMP)
	$(PY) bench/upload_memory.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-audit tests/js/node_modules clients/js/node_modules bench/node_modules tests/browser/node_modules .pytest_cache
