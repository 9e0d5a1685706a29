# transcribed: the two commands a newcomer needs are `make run` and `make test`.
# Both install what they need first (a virtual environment in $(VENV)); re-running is quick.

# The first Python 3.10-3.13 on PATH (torch 2.8, pinned by whisperx, has wheels for those).
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3.10 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] < (3, 14))' 2>/dev/null \
	&& echo $$p && break; done)
VENV     ?= .venv
EDITABLE ?= -e
EXTRAS   ?= [test,objectstore]
CONFIG   ?= config/transcribed.yaml
PYTEST_ARGS ?=
STAMP    := $(VENV)/.installed

.PHONY: install run test lint clean container-test

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@# Everything install says goes to stderr: `make run | jq` sees the daemon's JSON alone.
	@test -n "$(PYTHON)" || { echo "make: no Python 3.10-3.13 found on PATH" >&2; exit 1; }
	@echo "make: installing transcribed into $(VENV) (the first time takes minutes)" >&2
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV) >&2
	@$(VENV)/bin/python -m pip install --quiet --upgrade pip >&2
	@$(VENV)/bin/python -m pip install --quiet $(EDITABLE) ".$(EXTRAS)" >&2
	@touch $@

run: install
	@$(VENV)/bin/transcribed run --config $(CONFIG)  # @: stdout is the JSON log alone

# pytest exits 5 when it collected no test: that is a failure here, never a pass.
test: install
	@$(VENV)/bin/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$rc

# The container tier, not part of `make test`: builds the image from the committed tree with
# podman and runs it (minutes, about 9 GB). Needs root, podman and the local base image:
# tests/container/prepare-host makes this machine ready (.ci/run calls it).
container-test: install
	@$(VENV)/bin/python -m pytest tests/container $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make container-test: pytest collected no tests" >&2; fi; exit $$rc

# ruff (style and likely bugs) and mypy (strict types) on the package, as configured in pyproject.toml.
lint: install
	$(VENV)/bin/ruff check daemon
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build *.egg-info daemon/*.egg-info .pytest_cache
