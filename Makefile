# Thin entry points; each installs what it needs into .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
export DO_NOT_TRACK := 1
export NEXT_TELEMETRY_DISABLED := 1
export DVC_NO_ANALYTICS := 1
export YOLO_OFFLINE := 1

# The demo retrains (train: Ultralytics and torch) and quantizes (openvino).
DEMO_EXTRAS := server,postgres,openvino,train
# `make demo DEMO_ARGS=--demo-oracle`: any `visionloop demo` options.
DEMO_ARGS ?=
TEST_EXTRAS := server,postgres,openvino,train,dev

.PHONY: demo test check install-demo install-test bench web web-dev web-types web-if-missing web-screenshots

$(VENV)/.installed-demo: pyproject.toml scripts/install.sh
	VENV=$(VENV) scripts/install.sh $(DEMO_EXTRAS)
	touch $@

$(VENV)/.installed-test: pyproject.toml scripts/install.sh
	VENV=$(VENV) scripts/install.sh $(TEST_EXTRAS)
	touch $@ $(VENV)/.installed-demo

install-demo: $(VENV)/.installed-demo
install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed-demo web-if-missing
	$(VENV)/bin/visionloop demo $(DEMO_ARGS)

# Two pytest-xdist processes (tests/conftest.py); TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 2
test: $(VENV)/.installed-test
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing loudly"; exit 1; fi; exit $$rc

check: $(VENV)/.installed-test
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

bench: $(VENV)/.installed-test
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/detector.py
	$(PY) benchmarks/edge.py

# --- the dashboard (web/, Next.js static export served by the server at /) ---------------------
STATIC := src/visionloop/server/static
WEB_SOURCES := $(shell find web/src web/public -type f 2>/dev/null) web/package.json \
	web/package-lock.json web/next.config.ts web/tsconfig.json

web/node_modules/.package-lock.json: web/package-lock.json web/package.json
	@command -v npm >/dev/null || { echo "make web needs Node.js 20+ and npm"; exit 1; }
	cd web && npm ci --no-audit --no-fund --loglevel=error

$(STATIC)/index.html: web/node_modules/.package-lock.json $(WEB_SOURCES)
	cd web && npx --no-install next build
	rm -rf $(STATIC) && cp -R web/out $(STATIC)

web: $(STATIC)/index.html

web-if-missing:
	@test -f $(STATIC)/index.html || $(MAKE) web

web-dev: web/node_modules/.package-lock.json
	@echo "dashboard on http://localhost:3000, API from $${WEB_DEV_API:-http://127.0.0.1:8000}"
	cd web && npx --no-install next dev --port 3000

web-types: web/node_modules/.package-lock.json
	$(PY) scripts/web_types.py

web-screenshots: $(VENV)/.installed-test web
	DASHBOARD_SCREENSHOTS=docs/screenshots $(PY) -m pytest tests/web -q
