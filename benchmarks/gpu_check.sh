#!/usr/bin/env bash
# Issue 14's GPU check, for a machine with one CUDA GPU (under 8 minutes on an H200-class card):
# neural_rm in bf16 on a ~1B-parameter Llama RM (deterministic / mc_layers 1 / full MC, K = 8),
# the transformers judge backend on CUDA, and the suite's GPU-marked tests.
#   bash benchmarks/gpu_check.sh      (from the repository root, in the project's environment)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_DISABLE_PROGRESS_BARS=1
PY="${PYTHON:-python3}"
timeout 420 "$PY" benchmarks/gpu_check.py --pairs 256 --repeats 3
# GPU-marked tests (none is skipped for lack of a device here)
timeout 60 "$PY" -m pytest -q -m gpu tests || [ $? -eq 5 ]  # 5: no test carries the mark
