# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export DOCTORAI_SAMPLE := resources/sample

.PHONY: run test bench lint screenshot clean install

install: $(STAMP)

$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements/lock.txt -e '.[ai,backend,dev,deploy]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/doctorai --demo resources/sample

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen PYTHON_KEYRING_BACKEND=keyrings.alt.file.PlaintextKeyring \
		$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m benchmarks

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

screenshot: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m desktop.screenshot --out out/screenshot.png

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache

# Linux release (bundle, .tar.gz, .deb, SBOM, SHA256SUMS + signatures): see packaging/build.sh.
.PHONY: package
package: $(STAMP)
	PY=$(PY) packaging/build.sh

# The GPU tests (tests/gpu) on the CUDA builds of torch, tensorflow and onnxruntime in their own
# environment (.venv-gpu, never .venv): requirements/gpu-lock.txt, with requirements/lock.txt as
# constraints less its CPU-only builds. On a machine without a GPU every test skips with the reason.
GPU_VENV := .venv-gpu
.PHONY: gpu-check
gpu-check:
	test -x $(GPU_VENV)/bin/python || $(PYTHON) -m venv $(GPU_VENV)
	echo '*' > $(GPU_VENV)/.gitignore
	$(GPU_VENV)/bin/python -m pip install --quiet --upgrade pip
	grep -v -E '^(torch|tensorflow_cpu|onnxruntime)==' requirements/lock.txt > $(GPU_VENV)/constraints.txt
	$(GPU_VENV)/bin/python -m pip install --quiet -c $(GPU_VENV)/constraints.txt \
		-r requirements/gpu-lock.txt -e '.[dev]'
	QT_QPA_PLATFORM=offscreen PYTHON_KEYRING_BACKEND=keyrings.alt.file.PlaintextKeyring \
		$(GPU_VENV)/bin/python -m pytest tests/gpu -p no:cacheprovider -rs $(PYTEST_ARGS)
