#!/usr/bin/env bash
# CI legs beside the constraints one (make wheel-check, run by make test): build cvpt's wheel,
# install it into a venv of its own (no system site-packages) and run scripts/smoke.sh there
# (doctor; synth, read, train, predict; the codec tests):
#   floors  the oldest Python allowed and every lower bound of pyproject.toml exactly
#           (scripts/floors.py: torch, PyAV, numpy, OpenCV, ... and those of every extra the
#           tests exercise: plots, hub, onnx, the trackers, as written there)
#   latest  the newest Python here (3.13; PYTHON_LATEST overrides) and what pip picks today
#           for the wheel's ranges and those extras' (PyAV 19, the newest numpy, OpenCV,
#           huggingface_hub...; torch as capped by this machine's pip configuration, if any)
# torch from the registry is a CUDA build of several GB, so each venv is kept under
# ${CVPT_CI_CACHE:-~/.cache/cvpt-ci}, named by its leg and a hash of its Python and what it
# asks for; a kept one gets the new wheel (latest: every dependency upgraded, eagerly) and
# `pip check`. Usage: scripts/wheel_check.sh floors|latest. Prints the seconds each part took.
set -euo pipefail
cd "$(dirname "$0")/.."
leg=${1:?usage: wheel_check.sh floors|latest}
cache=${CVPT_CI_CACHE:-$HOME/.cache/cvpt-ci}
quiet() { grep -v "WARNING: Location" || true; }  # this machine's pip config notes, not ours

# the newest Python 3.13 (else 3.12) that pyenv or the PATH has
latest_python() {
    local v p
    for v in 3.13 3.12; do
        p=$(ls -d "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/$v.*/bin/python$v \
            2>/dev/null | sort -V | tail -1)
        [ -n "$p" ] || p=$(command -v "python$v" 2>/dev/null || true)
        if [ -n "$p" ] && "$p" --version >/dev/null 2>&1; then echo "$p"; return; fi
    done
    echo "wheel_check: no Python 3.13 or 3.12 found (set PYTHON_LATEST)" >&2
    return 1
}

# the extras both legs install (the wheel's [plots,hub,...]): every one the tests exercise
extras=$(python3 scripts/floors.py --extras)

case $leg in
floors)
    mapfile -t pins < <(python3 scripts/floors.py)
    want=${pins[0]#python==}
    python=${PYTHON_FLOORS:-python$want}
    pins=("${pins[@]:1}")
    # pytest as CI's main set has it (a test tool, not one of cvpt's floors)
    mapfile -t tools < <(grep -E '^(pytest|pytest-timeout)==' constraints.txt)
    asks=("${pins[@]}" "${tools[@]}")
    ;;
latest)
    python=${PYTHON_LATEST:-$(latest_python)}
    asks=(pytest pytest-timeout)
    ;;
*)
    echo "wheel_check: unknown leg '$leg' (floors or latest)" >&2
    exit 2
    ;;
esac
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$leg" = floors ] && [ "$version" != "$want" ]; then
    echo "wheel_check: the floors leg needs Python $want, $python is $version" >&2
    exit 1
fi

start=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" . 2>&1 | quiet
wheel=$(ls "$work"/dist/cvpt-*.whl)
built=$(date +%s)

# the key: this leg's Python, what it asks for and the wheel's own requirements (its extras'
# too): a change of any of them makes a new venv
key=$( (
    "$python" --version
    printf '%s\n' "${asks[@]}"
    python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]
print(p["dependencies"], p["optional-dependencies"])'
) | sha256sum | cut -c1-16)
venv=$cache/$leg-py$version-$key
if [ -f "$venv/.complete" ]; then
    # --no-compile: byte-compiling torch's sources was over half of an install (115 s -> 48 s)
    "$venv/bin/pip" install --quiet --no-compile --no-deps --force-reinstall "$wheel" 2>&1 | quiet
    if [ "$leg" = latest ]; then
        "$venv/bin/pip" install --quiet --no-compile --upgrade --upgrade-strategy eager \
            "${wheel}[$extras]" "${asks[@]}" 2>&1 | quiet
    fi
    how="kept venv"
else
    rm -rf "$cache/$leg-"*  # a half-made one (no .complete), and those of older keys
    mkdir -p "$cache"
    "$python" -m venv "$venv"  # made in place: a venv's scripts name their own path
    "$venv/bin/pip" install --quiet --no-compile "${wheel}[$extras]" "${asks[@]}" 2>&1 | quiet
    touch "$venv/.complete"
    how="new venv"
fi
"$venv/bin/pip" check
installed=$(date +%s)

scripts/smoke.sh "$venv"
end=$(date +%s)
echo "wheel check ($leg, Python $version): $((end - start)) s: build $((built - start)) s," \
    "$how + install $((installed - built)) s, smoke + codec tests $((end - installed)) s"
