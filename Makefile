# make demo: install into .venv, then run the demo on generated data (nothing is downloaded)
# make test: install into .venv (with dev tools), lint, check that the wheel installs alone in a
#   fresh venv beside the lowest allowed numpy/opencv/matplotlib, then run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo-out

.PHONY: install test lint demo bench clean wheel-check

# constraints.txt: the exact versions CI runs (pyproject.toml declares the ranges users get)
$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/.installed

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

# the wheel check first, so the test runner's summary is the last thing CI prints
test: lint wheel-check
	$(BIN)/pytest -q

# the wheel in a fresh venv (no system site-packages) beside other allowed versions: doctor,
# import, one clip through a model and a plot
wheel-check: install
	PYTHON=$(PYTHON) scripts/wheel_check.sh

# The embedded default: the paper's comparison on the synthetic compressed-video task (about 5 min
# on 2 idle cores), then one of its videos drawn as I-frames, MV colours and residuals.
demo: install
	$(BIN)/cvpt demo --out $(DEMO_OUT)
	$(BIN)/cvpt show $(DEMO_OUT)/default/data/videos/target_00000.mp4 -o $(DEMO_OUT)/clip.png

bench: install
	$(BIN)/cvpt bench reader --rounds 5 --out $(DEMO_OUT)/bench-reader.json

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache
