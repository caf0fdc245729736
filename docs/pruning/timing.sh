#!/usr/bin/env bash
# The timing check of docs/pruning.md: ICA pruning of a model with Llama-3.2-1B's MLP width (16 layers of 8192
# neurons, hidden 2048, random weights from `sparseonnx synth`), 20% of the neurons removed, on 1,024 calibration
# tokens (8 windows of 128, all of them sampled for ICA); then the pruned model's decode speed against the
# dense one. Usage: [WINDOWS=8] docs/pruning/timing.sh [OUT_DIR [EXTRA PRUNE ARGS...]]   (after ./build.sh; needs about 13 GB of disk, 12 minutes).
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-out/pruning-timing}"
shift || true
mkdir -p "$out"
[ -f "$out/dense/model.onnx" ] || bin/sparseonnx synth -o "$out/dense/model.onnx" --preset llama-3.2-1b
/usr/bin/time -f '%e s %M KB' -o "$out/prune.time" \
    bin/sparseonnx prune "$out/dense/model.onnx" -o "$out/ica-20/model.onnx" --ratio 0.2 \
    --calibration models/llama-brown/data/valid.txt --tokenizer models/llama-brown/tokenizer.model --documents lines \
    --samples "${WINDOWS:-8}" --validation-samples 1 --json "$@" > "$out/prune.json"
cat "$out/prune.time"
# Decode speed depends on the sizes only, not on which neurons were kept: an existing bench is reused.
[ -s "$out/bench.json" ] || bin/sparseonnx bench "$out/ica-20/model.onnx" --baseline "$out/dense/model.onnx" --prompt-tokens 16 --tokens 32 --json > "$out/bench.json"
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
p, b = json.load(open(f"{out}/prune.json")), json.load(open(f"{out}/bench.json"))
print(f"prune: {p['seconds']:.0f} s (capture {p['capture_seconds']:.0f} s, ICA {p['scoring_seconds']:.0f} s), "
      f"{p['calibration_tokens']} tokens, {p['sampled_tokens']} sampled; neurons {p['neurons_after']}/{p['neurons_before']}, "
      f"parameters {p['parameters_after']:,}/{p['parameters_before']:,}")
print(f"decode: {b['decode_tokens_per_s']:.2f} tokens/s vs dense {b['baseline_decode_tokens_per_s']:.2f} ({b['decode_speedup']:.2f}x)")
PY
