#!/usr/bin/env bash
# Train the baseline detector on a lent GPU machine (python3 with torch, no Ultralytics, no network).
#
# Ultralytics and what it needs beyond that machine's packages travel as wheels in .whl/
# (ignored by git). Prepare them here once:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux2014_x86_64 -d .whl \
#     ultralytics==8.4.190 ultralytics-thop==2.2.3 ultralytics-platform==0.1.99 \
#     polars==2.1.0 polars-runtime-32==2.1.0
# Then run it there with OUT set (results: best.pt, model.onnx, results.csv, args.yaml,
# summary.json, train.log). DEADLINE_S bounds the whole script; training stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the results folder}"
DEADLINE_S=${DEADLINE_S:-480}
N_IMAGES=${N_IMAGES:-4000}
BATCH=${BATCH:-64}
WORKERS=${WORKERS:-14}
DEVICE=${DEVICE:-0}
IMGSZ=${IMGSZ:-640}
WORK=${WORK:-/tmp/work}
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS-.whl}  # empty: use what is installed
start=$(date +%s)

if [ -n "$WHEELS" ] && [ -d "$WHEELS" ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/site:src
else
  export PYTHONPATH=src
fi
export PYTHONUNBUFFERED=1 YOLO_OFFLINE=1 DO_NOT_TRACK=1 YOLO_CONFIG_DIR=${YOLO_CONFIG_DIR:-/tmp/ultralytics}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
elapsed=$(( $(date +%s) - start ))
set -o pipefail
"$PYTHON" scripts/train_baseline.py --out "$OUT" --work "$WORK" --n "$N_IMAGES" --seed 0 \
  --imgsz "$IMGSZ" --epochs 300 --batch "$BATCH" --device "$DEVICE" --workers "$WORKERS" \
  --cache ram --deadline-s $(( DEADLINE_S - elapsed )) 2>&1 | tee "$OUT/train.log"
