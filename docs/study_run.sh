# Sourced by the study scripts (docs/*/study.sh) once they have set and created $out: sets model, tok, valid and
# test to the files of the reference model $REFERENCE (llama-brown by default, or llama-mix) and documents to the
# convention it was trained with (llama-brown: lines, one document per line; llama-mix: whole, one stream), scores
# the dense model on the test split into $out/dense.eval.json (once), and defines run.
reference="${REFERENCE:-llama-brown}"
cli="${SPARSEONNX:-bin/sparseonnx}"   # another build of the CLI, e.g. a copy that a rebuild will not replace mid-study
model="models/$reference/model.onnx"
tok="models/$reference/tokenizer.model"
valid="models/$reference/data/valid.txt"
test="models/$reference/data/test.txt"
case "$reference" in llama-brown) documents=lines ;; *) documents=whole ;; esac
[ -f "$out/dense.eval.json" ] || "$cli" eval "$model" --text "$test" --tokenizer "$tok" --documents "$documents" --json > "$out/dense.eval.json"

# run NAME SPARSITY CALIBRATION_TEXT EXTRA_ARGS...: sparsify $model with calibration on the text (threshold
# mode; the text read as $calibration_documents, by default $documents) into $out/NAME-SPARSITY.{onnx,plan.json,
# sparsify.json,time}, score it with eval on $test ($documents) into NAME-SPARSITY.eval.json, delete the model.
# A finished run is skipped, so a study can be resumed.
run() {
    local name="$1" s="$2" text="$3"; shift 3
    local stem="$out/$name-$s"
    [ -f "$stem.eval.json" ] && return 0
    if ! { [ -s "$stem.sparsify.json" ] && [ -f "$stem.onnx" ]; }; then
        /usr/bin/time -f '%e s %M KB' -o "$stem.time" \
            "$cli" sparsify "$model" -o "$stem.onnx" --mode threshold --sparsity "$s" \
            --calibration "$text" --tokenizer "$tok" --documents "${calibration_documents:-$documents}" --json "$@" > "$stem.sparsify.json"
    fi
    "$cli" eval "$stem.onnx" --text "$test" --tokenizer "$tok" --documents "$documents" --json > "$stem.eval.json"
    rm -f "$stem.onnx"
}
