# Thin entry points; each installs what it needs into .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
export DO_NOT_TRACK := 1
export NEXT_TELEMETRY_DISABLED := 1
export DVC_NO_ANALYTICS := 1
export YOLO_OFFLINE := 1

DEMO_EXTRAS := server,postgres,openvino
TEST_EXTRAS := server,postgres,openvino,train,dev

.PHONY: demo test check install-demo install-test bench

$(VENV)/.installed-demo: pyproject.toml scripts/install.sh
	VENV=$(VENV) scripts/install.sh $(DEMO_EXTRAS)
	touch $@

$(VENV)/.installed-test: pyproject.toml scripts/install.sh
	VENV=$(VENV) scripts/install.sh $(TEST_EXTRAS)
	touch $@ $(VENV)/.installed-demo

install-demo: $(VENV)/.installed-demo
install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed-demo
	$(VENV)/bin/visionloop demo

test: $(VENV)/.installed-test
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing loudly"; exit 1; fi; exit $$rc

check: $(VENV)/.installed-test
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

bench: $(VENV)/.installed-test
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/detector.py
	$(PY) benchmarks/edge.py
