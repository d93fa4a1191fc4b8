#!/usr/bin/env bash
# Set up everything the project needs on a fresh Debian/Ubuntu machine; idempotent
# (a second run only checks). Used by README's first command and by .ci/run.
#   1. Debian packages: Tesseract (rus+eng), the fonts the demo generator uses, headless Chromium
#   2. .venv with the pinned package, llama-cpp-python built once from source
#      (CMAKE_ARGS=-DGGML_NATIVE=OFF, so the wheel runs on any x86-64 CPU) and cached
#   3. the two GGUF models, fetched and verified against their sha256 pins
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/vlm-prompt-opt"
WHEELS="$CACHE/wheels"
LLAMA_VERSION=0.3.36
PY="${PYTHON:-python3}"

# chromium: headless, for the test that renders the HTML report (tests/test_collect_report.py)
apt_packages=(tesseract-ocr tesseract-ocr-rus fonts-dejavu-core fonts-liberation fonts-freefont-ttf chromium)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python

mkdir -p "$WHEELS"
if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  echo "setup: building llama-cpp-python $LLAMA_VERSION from source (about 7 minutes on 2 cores)"
  CMAKE_ARGS="-DGGML_NATIVE=OFF" "$VPY" -m pip wheel -q --no-deps "llama-cpp-python==$LLAMA_VERSION" -w "$WHEELS"
fi

stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing the package and its pinned dependencies into .venv"
  "$VPY" -m pip install -q --disable-pip-version-check --find-links "$WHEELS" -e ".[llm,qwen,sweep,compare,test]"
  touch "$stamp"
fi

LITELLM_LOCAL_MODEL_COST_MAP=True "$VPY" scripts/fetch_models.py
echo "setup: done"
