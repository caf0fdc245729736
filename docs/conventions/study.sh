#!/usr/bin/env bash
# The document-convention study of docs/runtime.md: how reading text as one stream (--documents whole) or as
# per-line documents (--documents lines) changes evaluation and calibration, on both trained reference models.
#   1. eval of each dense model under both conventions (each was trained under one of them);
#   2. llama-mix (trained on one stream) calibrated at 50/60/70% (threshold mode, uniform allocation, compensation
#      where it helps) with trained spontaneous neurons and without, its calibration text read both ways,
#      always scored on the test split read as one stream.
# Usage: docs/conventions/study.sh [OUT_DIR]   (after ./build.sh; about 25 minutes on 2 cores).
# Writes OUT_DIR/<model>.<documents>.eval.json and OUT_DIR/mix/<variant>-<sparsity>.*; summarize.py tabulates them.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="${1:-out/conventions}"
mkdir -p "$root"
for m in llama-brown llama-mix; do
    for d in whole lines; do
        [ -s "$root/$m.$d.eval.json" ] || bin/sparseonnx eval "models/$m/model.onnx" --text "models/$m/data/test.txt" \
            --documents "$d" --json > "$root/$m.$d.eval.json"
    done
done
out="$root/mix"
mkdir -p "$out"
REFERENCE=llama-mix
source docs/study_run.sh
for s in 0.5 0.6 0.7; do
    run off-whole "$s" "$valid" --spontaneous off
    run trained-whole "$s" "$valid"
    calibration_documents=lines run off-lines "$s" "$valid" --spontaneous off
    calibration_documents=lines run trained-lines "$s" "$valid"
done
python3 docs/conventions/summarize.py "$root"
