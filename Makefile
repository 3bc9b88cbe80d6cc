# The two commands of the README: `make run` and `make test`.
# Each creates .venv and installs the project on first use; later calls reuse it.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test dev chaos bench clean-state

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 15) else "campaign_pipeline needs Python 3.11 to 3.14 (Dagster 1.13 supports no newer); set PYTHON=/path/to/python3.12")'
	@# A venv whose pip is missing (python3-venv was not installed when it was made) is made again.
	@$(BIN)/python -m pip --version >/dev/null 2>&1 || $(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(INSTALLED)

run: $(INSTALLED)
	$(BIN)/campaign-pipeline run

test: $(INSTALLED)
	$(BIN)/python -m pytest

dev: $(INSTALLED)
	$(BIN)/campaign-pipeline dev

chaos: $(INSTALLED)
	$(BIN)/python -m pytest -m slow -p no:cacheprovider campaign_pipeline_tests

bench: $(INSTALLED)
	$(BIN)/python -m bench

clean-state:
	-$(BIN)/campaign-pipeline db stop
	rm -rf .campaign_pipeline
