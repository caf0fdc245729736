#!/usr/bin/env bash
# The sequential-calibration study of docs/calibration.md: the reference model $REFERENCE (llama-brown by default,
# or llama-mix) sparsified at 40/50/60/70% (threshold mode, calibrated on its validation text) by the sequential
# method (its defaults, and its blocks alone without the end-to-end phase), next to the whole-model method and
# plain thresholds, each scored with `eval` on the test split. The tables used VARIANTS="sparse sequential-uniform
# sequential-blocks full" (uniform allocation, the default then); "sequential" is today's default (greedy where
# affordable), the other greedy variants are there to try.
# Usage: REFERENCE=llama-mix docs/sequential/study.sh [OUT_DIR]   (after ./build.sh; about 15 minutes per model
# for the sequential rows on 2 cores, 15 more for the whole-model ones). Writes OUT_DIR/<variant>-<sparsity>.*;
# summarize.py tabulates them.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-out/sequential-study-${REFERENCE:-llama-brown}}"
mkdir -p "$out"
source docs/study_run.sh
# VARIANTS and LEVELS choose a part of the study (default: all of it).
variants="${VARIANTS:-sparse sequential sequential-uniform sequential-blocks full sequential-greedy full-greedy}"
for s in ${LEVELS:-0.7 0.6 0.5 0.4}; do
    for v in $variants; do
        case "$v" in
            sparse) run sparse "$s" "$valid" --allocation uniform --spontaneous off ;;
            sequential) run sequential "$s" "$valid" ;;                 # the defaults: block by block, then end-to-end KL where it fits
            sequential-uniform) run sequential-uniform "$s" "$valid" --allocation uniform ;;   # the defaults before greedy became one
            sequential-blocks) run sequential-blocks "$s" "$valid" --allocation uniform --end-to-end-steps 0 ;;   # block by block alone
            sequential-greedy) run sequential-greedy "$s" "$valid" --allocation greedy ;;
            full) run full "$s" "$valid" --calibration-method full ;;   # the whole-model method, its defaults
            full-greedy) run full-greedy "$s" "$valid" --calibration-method full --allocation greedy ;;
        esac
    done
done
echo "done: $out"
