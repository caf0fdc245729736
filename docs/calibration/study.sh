#!/usr/bin/env bash
# The calibration study of docs/calibration.md: llama-brown calibrated at 40/50/60/70% average sparsity
# (threshold mode), each variant rewritten with `sparsify --calibration` and scored with `eval` on the test split.
# Usage: docs/calibration/study.sh [OUT_DIR]   (after ./build.sh; about 75 minutes on 2 quiet cores)
# Writes OUT_DIR/<variant>-<sparsity>.{plan.json,sparsify.json,eval.json,time}; then summarize.py tabulates them.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-out/calibration-study}"
mkdir -p "$out"
source docs/study_run.sh
# Another text: the fiction documents of the validation split (genres k-r, its last 10 lines) calibrate a
# model that is then scored on the test split's 15 genres.
tail -n 10 "$valid" > "$out/valid-fiction.txt"
for s in 0.4 0.5 0.6 0.7; do
    run uniform "$s" "$valid" --compensation off --spontaneous closed-form
    run uniform-closedform "$s" "$valid" --compensation on --spontaneous closed-form
    run uniform-auto "$s" "$valid" --compensation auto --spontaneous closed-form
    run greedy-block "$s" "$valid" --allocation greedy --greedy-objective block --compensation off --spontaneous closed-form
    run greedy "$s" "$valid" --allocation greedy --compensation off --spontaneous closed-form
    run greedy-auto "$s" "$valid" --allocation greedy --compensation auto --spontaneous closed-form
    run fiction-uniform-auto "$s" "$out/valid-fiction.txt" --compensation auto --spontaneous closed-form
    run fiction-greedy-auto "$s" "$out/valid-fiction.txt" --allocation greedy --compensation auto --spontaneous closed-form
done
echo "done: $out"
