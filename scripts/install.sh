#!/usr/bin/env bash
# Create .venv if missing and install visionloop with the given extras (e.g. "server,dev").
# Ultralytics pulls opencv-python, whose cv2 folder overwrites opencv-python-headless's: we remove
# it and reinstall the headless build so exactly one cv2 (the headless one) remains.
set -euo pipefail
extras="${1:?usage: install.sh EXTRAS}"
venv="${VENV:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip wheel setuptools
"$venv/bin/python" -m pip install -q -e ".[${extras}]"
if "$venv/bin/python" -m pip show -q opencv-python >/dev/null 2>&1; then
  "$venv/bin/python" -m pip uninstall -q -y opencv-python
  headless=$("$venv/bin/python" -m pip show opencv-python-headless | awk '/^Version:/{print $2}')
  "$venv/bin/python" -m pip install -q --force-reinstall --no-deps "opencv-python-headless==${headless}"
fi
# OpenVINO's telemetry sender reads a per-user consent file (~/intel/openvino_telemetry): opt out.
if [ -x "$venv/bin/opt_in_out" ]; then "$venv/bin/opt_in_out" --opt_out >/dev/null; fi
"$venv/bin/python" -c "import cv2; print(\"cv2\", cv2.__version__, cv2.__file__)"
