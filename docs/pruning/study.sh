#!/usr/bin/env bash
# The pruning study of docs/pruning.md: llama-brown with 10/20/30/50% of its MLP neurons removed by each method
# (ICA as the paper scores it, ICA on output-scaled activations, activation, magnitude), with and without
# compensation, first and last layers kept whole (the default), calibrated on valid.txt and scored with `eval`
# on the test split; two ablations without --keep-layers; then the decode speed of each pruned size against
# the dense model (`bench`). Usage: docs/pruning/study.sh [OUT_DIR]   (after ./build.sh; about 35 minutes on 2
# quiet cores). Writes OUT_DIR/<variant>-<comp>-<ratio>.{prune.json,eval.json,time} and bench-<ratio>.json;
# summarize.py tabulates them. A finished run is skipped, so the study can be resumed.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-out/pruning-study}"
mkdir -p "$out"
source docs/study_run.sh

# prune_and_score VARIANT COMP RATIO PRUNE_ARGS...: prune into $out/VARIANT-COMP-RATIO.onnx, score it, keep the
# model only when the bench below needs it (ica with compensation).
prune_and_score() {
    local variant="$1" comp="$2" r="$3"; shift 3
    local stem="$out/$variant-$comp-$r"
    [ -f "$stem.eval.json" ] && return 0
    local flags=()
    [ "$comp" = off ] && flags+=(--no-compensation)
    /usr/bin/time -f '%e s %M KB' -o "$stem.time" \
        bin/sparseonnx prune "$model" -o "$stem.onnx" --ratio "$r" "${flags[@]}" \
        --calibration "$valid" --tokenizer "$tok" --documents "$documents" --json "$@" > "$stem.prune.json"
    bin/sparseonnx eval "$stem.onnx" --text "$test" --tokenizer "$tok" --documents "$documents" --json > "$stem.eval.json"
    [ "$variant-$comp" = ica-on ] || rm -f "$stem.onnx"
}

for r in 0.2 0.3 0.1 0.5; do
    for comp in on off; do
        prune_and_score ica "$comp" "$r" --method ica
        prune_and_score ica-output "$comp" "$r" --method ica --ica-score output
        prune_and_score activation "$comp" "$r" --method activation
        prune_and_score magnitude "$comp" "$r" --method magnitude
    done
    # Ablations: every layer pruned.
    prune_and_score ica-all-layers on "$r" --method ica --keep-layers none
    prune_and_score activation-all-layers on "$r" --method activation --keep-layers none
done
# Decode speed depends only on the sizes, not on which neurons were kept: one bench per ratio, all in the
# same quiet conditions, each against the dense model measured in the same run.
for r in 0.1 0.2 0.3 0.5; do
    [ -f "$out/bench-$r.json" ] || bin/sparseonnx bench "$out/ica-on-$r.onnx" --baseline "$model" --json > "$out/bench-$r.json"
done
echo "done: $out"
