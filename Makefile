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

# Until the synthetic benchmark lands: make an ordinary H.264 video (B-frames, GOP 250),
# prepare it, probe it and draw one compressed clip.
demo: install
	mkdir -p $(DEMO_OUT)/raw
	$(BIN)/python -c "from cvpt.data.generate import moving_scene; import cvpt; \
	cvpt.write_video('$(DEMO_OUT)/raw/scene.mp4', moving_scene(frames=180, seed=0), \
	codec='libx264', gop=250, max_b_frames=3)"
	$(BIN)/cvpt probe $(DEMO_OUT)/raw/scene.mp4
	$(BIN)/cvpt prepare $(DEMO_OUT)/raw $(DEMO_OUT)/prepared
	$(BIN)/cvpt probe $(DEMO_OUT)/prepared/scene.mp4
	$(BIN)/cvpt show $(DEMO_OUT)/prepared/scene.mp4 -o $(DEMO_OUT)/clip.png

bench: install
	$(BIN)/cvpt bench reader --out $(DEMO_OUT)/bench-reader.json

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache
