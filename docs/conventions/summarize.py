#!/usr/bin/env python3
"""Tabulates docs/conventions/study.sh: markdown tables on stdout and perplexity.json beside this script."""
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "out/conventions"
here = os.path.dirname(os.path.abspath(__file__))
load = lambda p: json.load(open(p))

result = {"eval": {}, "mix": {}}
print("| model (trained with) | `--documents whole` | `--documents lines` |")
print("| --- | --- | --- |")
for m, trained in (("llama-brown", "lines"), ("llama-mix", "whole")):
    cells = []
    for d in ("whole", "lines"):
        e = load(f"{root}/{m}.{d}.eval.json")
        result["eval"][f"{m}.{d}"] = {"perplexity": e["perplexity"], "tokens": e["tokens"], "stream_tokens": e["stream_tokens"],
                                      "bos_tokens": e["bos_tokens"]}
        cell = f"{e['perplexity']:.2f} ({e['stream_tokens']:,} tokens, {e['bos_tokens']:,} BOS)"
        cells.append(f"**{cell}**" if d == trained else cell)
    print(f"| {m} ({trained}) | {cells[0]} | {cells[1]} |")

out = f"{root}/mix"
dense = load(f"{out}/dense.eval.json")["perplexity"]
levels = ("0.5", "0.6", "0.7")
print()
print(f"llama-mix test perplexity (read as one stream; dense {dense:.2f}), calibrated with the text read each way:")
print()
print("| calibration text read as | spontaneous neurons | " + " | ".join(f"{float(s):.0%}" for s in levels) + " |")
print("| --- | --- | " + " | ".join("---" for _ in levels) + " |")
for reading in ("whole", "lines"):
    for variant in ("off", "trained"):
        cells = []
        for s in levels:
            stem = f"{out}/{variant}-{reading}-{s}"
            ppl = load(stem + ".eval.json")["perplexity"]
            cal = load(stem + ".sparsify.json").get("calibration", {})
            result["mix"][f"{variant}-{reading}-{s}"] = {"perplexity": ppl, "measured_sparsity": cal.get("measured_sparsity"),
                                                         "trained_kept": (cal.get("training") or {}).get("kept")}
            cell = f"{ppl:.2f}"
            if variant == "trained":
                off = result["mix"][f"off-{reading}-{s}"]["perplexity"]
                cell += f" ({(off - ppl) / (off - dense):+.0%} of the gap{'' if (cal.get('training') or {}).get('kept') else ', not kept'})"
            cells.append(cell)
        print(f"| {reading} | {variant} | " + " | ".join(cells) + " |")
result["mix_dense"] = dense
with open(os.path.join(here, "perplexity.json"), "w") as f:
    json.dump(result, f, indent=1)
