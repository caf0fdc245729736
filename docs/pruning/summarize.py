#!/usr/bin/env python3
"""Tabulates docs/pruning/study.sh's results (Markdown on stdout) and draws the perplexity plot (SVG).

Usage: docs/pruning/summarize.py OUT_DIR SVG_PATH   (standard library only)
"""
import json, os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from study_results import write_svg

out, svg_path = sys.argv[1], sys.argv[2]
METHODS = [("ica", "ICA key neurons, the paper's max abs z (global τ)"), ("ica-output", "ICA of output-scaled activations (global τ)"),
           ("activation", "activation ‖W_down row‖·‖h‖ (Wanda-sp-like)"), ("magnitude", "weight magnitude"),
           ("ica-all-layers", "ablation: ICA, every layer pruned"), ("activation-all-layers", "ablation: activation, every layer pruned")]
RATIOS = ["0.1", "0.2", "0.3", "0.5"]


def load(name):
    path = os.path.join(out, name)
    return json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) > 0 else None


dense = load("dense.eval.json")["perplexity"]
rows = {}
for method, _ in METHODS:
    for comp in ("on", "off"):
        for r in RATIOS:
            p, e = load(f"{method}-{comp}-{r}.prune.json"), load(f"{method}-{comp}-{r}.eval.json")
            if p and e:
                t = open(os.path.join(out, f"{method}-{comp}-{r}.time")).read().split()
                rows[method, comp, r] = dict(ppl=e["perplexity"], prune=p, seconds=float(t[0]), rss_mb=int(t[2]) / 1024)

print(f"Test perplexity of llama-brown (dense {dense:.2f}) with a share of its 4,128 MLP neurons removed (first and last layers "
      "kept whole unless the row says otherwise); in brackets the rise over dense; the best of each column in bold.\n")
print("| method | compensation | " + " | ".join(f"{float(r):.0%}" for r in RATIOS) + " |")
print("| --- | --- |" + " --- |" * len(RATIOS))
for method, label in METHODS:
    for comp in ("on", "off"):
        if not any((method, comp, r) in rows for r in RATIOS): continue
        cells = []
        for r in RATIOS:
            row = rows.get((method, comp, r))
            if not row: cells.append("—"); continue
            best = min(rows[m, c, r]["ppl"] for m, _ in METHODS for c in ("on", "off") if (m, c, r) in rows)
            cell = f"{row['ppl']:.2f} ({row['ppl'] / dense - 1:+.1%})"
            cells.append(f"**{cell}**" if row["ppl"] == best else cell)
        print(f"| {label} | {comp} | " + " | ".join(cells) + " |")

print("\nParameters after pruning (ICA, compensation on; the baselines remove the same neuron count), and decode speed "
      "against the dense model measured in the same `bench` run (128 prompt + 128 decoded tokens, 2 threads, medians)\n")
print("| removed | MLP neurons | parameters | fewer | decode tokens/s (dense) | decode speedup |")
print("| --- | --- | --- | --- | --- | --- |")
for r in RATIOS:
    row, bench = rows.get(("ica", "on", r)), load(f"bench-{r}.json")
    if not row: continue
    p = row["prune"]
    speed = f"{bench['decode_tokens_per_s']:.0f} ({bench['baseline_decode_tokens_per_s']:.0f}) | {bench['decode_speedup']:.2f}×" if bench else "— | —"
    print(f"| {float(r):.0%} | {p['neurons_after']:,} / {p['neurons_before']:,} | {p['parameters_after']:,} / {p['parameters_before']:,} | "
          f"{1 - p['parameters_after'] / p['parameters_before']:.1%} | {speed} |")

print("\nICA's per-layer kept neurons (global τ) and time of the whole `prune` command with its peak RSS\n")
print("| removed | τ | kept per layer | ICA iterations per layer | `prune` time, peak RSS |")
print("| --- | --- | --- | --- | --- |")
for r in RATIOS:
    row = rows.get(("ica", "on", r))
    if not row: continue
    p = row["prune"]
    print(f"| {float(r):.0%} | {p['threshold']:.3f} | {', '.join(str(l['kept']) for l in p['layers'])} | "
          f"{', '.join(str(l['ica']['iterations']) if l['ica'] else '—' for l in p['layers'])} | {row['seconds']:.0f} s, {row['rss_mb']:.0f} MB |")

series = []
for method, label in METHODS:
    series.append((f"{method}, compensated", {r: rows[method, "on", r]["ppl"] for r in RATIOS if (method, "on", r) in rows}))
    plain = {r: rows[method, "off", r]["ppl"] for r in RATIOS if (method, "off", r) in rows}
    if plain: series.append((f"{method}, plain (dashed)", plain))
write_svg(svg_path, RATIOS, series, dense, x_range=(0.05, 0.55), x_label="share of MLP neurons removed")
json.dump({"dense_test_perplexity": dense,
           "runs": {f"{m}-{c}-{r}": dict(perplexity=v["ppl"], seconds=v["seconds"], rss_mb=v["rss_mb"],
                                          parameters_after=v["prune"]["parameters_after"], threshold=v["prune"]["threshold"],
                                          kept=[l["kept"] for l in v["prune"]["layers"]])
                    for (m, c, r), v in rows.items()},
           "bench": {r: load(f"bench-{r}.json") for r in RATIOS if load(f"bench-{r}.json")}},
          open(os.path.splitext(svg_path)[0] + ".json", "w"), indent=1)
