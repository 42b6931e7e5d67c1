#!/usr/bin/env bash
# The main job on the embedded default: the whole pipeline on the local backend, with the
# vendored real photos and ImageNet weights, no AWS, no Docker, no network.
#   ingest -> tune -> train --from-tuning latest -> report -> deploy -> predict -> teardown
# Whatever happens, the endpoint is torn down on the way out.
set -euo pipefail
cd "$(dirname "$0")/.."

DOGBREED="${DOGBREED:-.venv/bin/dogbreed}"
WORKSPACE="${DEMO_WORKSPACE:-.dogbreed-demo}"
CONFIG=(-c configs/local.yaml -c configs/demo.yaml --set "workspace=$WORKSPACE")

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
cleanup() { "$DOGBREED" teardown --all --yes "${CONFIG[@]}" >/dev/null 2>&1 || true; }
trap cleanup EXIT

step "ingest: check, split and store the vendored photos"
"$DOGBREED" ingest examples/dogs "${CONFIG[@]}"

step "tune: a few trials of train.py, sharing one feature cache"
"$DOGBREED" tune "${CONFIG[@]}"

step "train: the final model with the best trial's parameters"
"$DOGBREED" train --from-tuning latest "${CONFIG[@]}"

step "report: plots and rules of that training job"
"$DOGBREED" report "${CONFIG[@]}"

step "deploy: a local endpoint with SageMaker's HTTP contract"
"$DOGBREED" deploy "${CONFIG[@]}"

step "predict: photos the model never saw (10 dogs, and a cat it should call not a dog)"
"$DOGBREED" predict examples/predict --top-k 3 "${CONFIG[@]}"

step "status, then teardown: nothing left running"
"$DOGBREED" status "${CONFIG[@]}"
"$DOGBREED" teardown --all --yes "${CONFIG[@]}"
trap - EXIT
