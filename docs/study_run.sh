# Sourced by the study scripts (docs/*/study.sh) once they have set and created $out: sets model, tok, valid and
# test to the reference model's files, scores the dense model on the test split into $out/dense.eval.json
# (once), and defines run.
model=models/llama-brown/model.onnx
tok=models/llama-brown/tokenizer.model
valid=models/llama-brown/data/valid.txt
test=models/llama-brown/data/test.txt
[ -f "$out/dense.eval.json" ] || bin/sparseonnx eval "$model" --text "$test" --tokenizer "$tok" --json > "$out/dense.eval.json"

# run NAME SPARSITY CALIBRATION_TEXT EXTRA_ARGS...: sparsify $model with calibration on the text (threshold
# mode) into $out/NAME-SPARSITY.{onnx,plan.json,sparsify.json,time}, score it with eval on $test into
# NAME-SPARSITY.eval.json, delete the model. A finished run is skipped, so a study can be resumed.
run() {
    local name="$1" s="$2" text="$3"; shift 3
    local stem="$out/$name-$s"
    [ -f "$stem.eval.json" ] && return 0
    if ! { [ -s "$stem.sparsify.json" ] && [ -f "$stem.onnx" ]; }; then
        /usr/bin/time -f '%e s %M KB' -o "$stem.time" \
            bin/sparseonnx sparsify "$model" -o "$stem.onnx" --mode threshold --sparsity "$s" \
            --calibration "$text" --tokenizer "$tok" --json "$@" > "$stem.sparsify.json"
    fi
    bin/sparseonnx eval "$stem.onnx" --text "$test" --tokenizer "$tok" --json > "$stem.eval.json"
    rm -f "$stem.onnx"
}
