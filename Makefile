# make demo: install into .venv, then run the demo on generated data (nothing is downloaded)
# make test: what CI runs (.ci/run), three legs: install into .venv (Python 3.11, constraints.txt,
#   dev tools) and lint; the wheel in venvs of its own at the declared floors (Python 3.11) and
#   at pip's newest picks (Python 3.13: PyAV 19), each through scripts/smoke.sh; then the whole
#   test suite in .venv: the default set, then the tests marked slow
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
	$(BIN)/pytest -q -m slow

# the wheel in venvs of its own (cached under ~/.cache/cvpt-ci: torch there is a CUDA build of
# several GB): doctor, synth, read, train, predict and the codec tests (scripts/wheel_check.sh)
wheel-check: install
	scripts/wheel_check.sh floors
	scripts/wheel_check.sh latest

# The embedded default: the paper's comparison on the synthetic compressed-video task (about 5 min
# on 2 idle cores), then one of its videos drawn as I-frames, MV colours and residuals.
demo: install
	$(BIN)/cvpt demo --out $(DEMO_OUT)
	$(BIN)/cvpt show $(DEMO_OUT)/default/data/videos/target_00000.mp4 -o $(DEMO_OUT)/clip.png

bench: install
	$(BIN)/cvpt bench reader --rounds 5 --out $(DEMO_OUT)/bench-reader.json

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache
