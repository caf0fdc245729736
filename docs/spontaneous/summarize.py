#!/usr/bin/env python3
"""Tabulates docs/spontaneous/study.sh's results (Markdown on stdout) and draws the perplexity plot (SVG).

Usage: docs/spontaneous/summarize.py OUT_DIR SVG_PATH   (standard library only)
"""
import json, math, os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from study_results import load_runs, write_svg

out, svg_path = sys.argv[1], sys.argv[2]
VARIANTS = [
    ("sparse", "sparse: uniform TEAL thresholds"),
    ("closedform", "sparse + closed form everywhere"),
    ("paper-alpha", "sparse + KL-trained α (paper's method)"),
    ("greedy-trained", "ours: greedy + closed form + trained vectors"),
    ("uniform-trained", "ablation: uniform + closed form + trained"),
]
LEVELS = ["0.4", "0.5", "0.6", "0.7"]

dense, rows = load_runs(out, [key for key, _ in VARIANTS], LEVELS,
                        lambda c: dict(training=c.get("training")))

def recovered(key, s):
    """Share of the sparse model's perplexity gap to dense that the variant closes."""
    if ("sparse", s) not in rows: return None
    gap = rows["sparse", s]["ppl"] - dense
    return (rows["sparse", s]["ppl"] - rows[key, s]["ppl"]) / gap

def table(title, cell, keys=None):
    print(f"{title}\n")
    print("| variant | " + " | ".join(f"{float(s):.0%}" for s in LEVELS) + " |")
    print("| --- |" + " --- |" * len(LEVELS))
    for key, label in VARIANTS:
        if keys and key not in keys: continue
        print(f"| {label} | " + " | ".join("—" if (key, s) not in rows else cell(key, s, rows[key, s]) for s in LEVELS) + " |")

table(f"Test perplexity of llama-brown (dense {dense:.2f}), threshold mode; in brackets the share of the sparse model's gap to dense recovered.",
      lambda key, s, r: f"{r['ppl']:.2f}" + ("" if key == "sparse" or recovered(key, s) is None else f" ({recovered(key, s):+.0%})"))
table("\nMeasured average sparsity on held-out text",
      lambda key, s, r: f"{r['measured']:.1%}")
table("\nTraining: steps run, step kept, held-out KL before → after, and whether the vectors were kept",
      lambda key, s, r: "—" if not r["training"] else
      f"{r['training']['steps']}, {r['training']['best_step']}, {r['training']['held_out_kl_before']:.4f} → {r['training']['held_out_kl_after']:.4f}"
      + ("" if r["training"]["kept"] else ", not kept"),
      keys={"paper-alpha", "greedy-trained", "uniform-trained"})
table("\nTime of the training alone (s), and of the whole `sparsify --calibration` command with its peak RSS (MB)",
      lambda key, s, r: (f"{r['training']['seconds']:.0f} s of " if r["training"] else "") + f"{r['seconds']:.0f} s, {r['rss_mb']:.0f} MB")

write_svg(svg_path, LEVELS, [(label, {s: rows[key, s]["ppl"] for s in LEVELS if (key, s) in rows}) for key, label in VARIANTS], dense)
json.dump({"dense_test_perplexity": dense, "runs": {f"{k}-{s}": v for (k, s), v in rows.items()}},
          open(os.path.splitext(svg_path)[0] + ".json", "w"), indent=1)
