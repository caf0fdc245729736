#!/usr/bin/env bash
# The spontaneous-neuron study of docs/spontaneous.md: llama-brown sparsified at 40/50/60/70% average sparsity
# (threshold mode, calibrated on valid.txt), each variant written by `sparsify --calibration` and scored with
# `eval` on the test split. Usage: docs/spontaneous/study.sh [OUT_DIR]   (after ./build.sh; about 75 minutes on
# 2 quiet cores). Writes OUT_DIR/<variant>-<sparsity>.{plan.json,sparsify.json,eval.json,time}; summarize.py
# tabulates them.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-out/spontaneous-study}"
mkdir -p "$out"
source docs/study_run.sh
# The paper's method as reproduced: α per shared input from zero, uniform TEAL thresholds, Adam for 150 steps of
# 16 windows of 128 tokens at 2e-2 (the issue's prototype), the last step's vectors kept whatever they do.
paper=(--spontaneous trained --compensation off --train-space input --train-init zero --train-lr 0.02 --train-batch 16
       --train-patience 0 --train-keep always)
# Highest sparsity first (where the targets are); the ablation last.
for s in 0.7 0.6 0.5 0.4; do
    run sparse "$s" "$valid" --spontaneous off
    run closedform "$s" "$valid" --spontaneous closed-form --compensation on
    run greedy-trained "$s" "$valid" --allocation greedy --spontaneous trained
    run paper-alpha "$s" "$valid" "${paper[@]}"
done
for s in 0.7 0.6 0.5 0.4; do
    run uniform-trained "$s" "$valid" --spontaneous trained
done
echo "done: $out"
