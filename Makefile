# make demo: install into .venv, then run the demo on generated data (nothing is downloaded)
# make test: install into .venv (with dev tools), then lint and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo-out

.PHONY: install test lint demo bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

test: lint
	$(BIN)/pytest -q

# The embedded default: the paper's comparison on the synthetic compressed-video task (≤ 6 min
# on 2 cores), then one of its videos drawn as I-frames, MV colours and residuals.
demo: install
	$(BIN)/cvpt demo --out $(DEMO_OUT)
	$(BIN)/cvpt show $(DEMO_OUT)/default/data/videos/target_00000.mp4 -o $(DEMO_OUT)/clip.png

bench: install
	$(BIN)/cvpt bench reader --rounds 5 --out $(DEMO_OUT)/bench-reader.json

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache
