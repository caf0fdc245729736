#!/usr/bin/env python3
"""Tabulates docs/sequential/study.sh's results (Markdown on stdout) and draws the perplexity plot (SVG).

Usage: docs/sequential/summarize.py OUT_DIR SVG_PATH   (standard library only)
"""
import json, os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from study_results import load_runs, write_svg

out, svg_path = sys.argv[1], sys.argv[2]
VARIANTS = [
    ("sparse", "sparse: uniform thresholds, no vectors"),
    ("full", "whole model: uniform + closed form + KL-trained vectors"),
    ("sequential-blocks", "sequential, blocks alone: uniform + closed form per block"),
    ("sequential-uniform", "sequential + 60 end-to-end KL steps (the default then)"),
    ("sequential", "sequential, greedy where affordable + 60 end-to-end KL steps (the default)"),
    ("full-greedy", "whole model, greedy allocation (logits objective)"),
    ("sequential-greedy", "sequential, greedy allocation (logits objective), closed form where it helps"),
]
LEVELS = ["0.4", "0.5", "0.6", "0.7"]
dense, rows = load_runs(out, [key for key, _ in VARIANTS], LEVELS, lambda c: dict(method=c.get("method", "full"), notes=c.get("notes", [])))

def recovered(key, s):
    if ("sparse", s) not in rows: return None
    gap = rows["sparse", s]["ppl"] - dense
    return (rows["sparse", s]["ppl"] - rows[key, s]["ppl"]) / gap

def table(title, cell):
    print(f"{title}\n")
    print("| variant | " + " | ".join(f"{float(s):.0%}" for s in LEVELS) + " |")
    print("| --- |" + " --- |" * len(LEVELS))
    for key, label in VARIANTS:
        if not any((key, s) in rows for s in LEVELS): continue
        print(f"| {label} | " + " | ".join("—" if (key, s) not in rows else cell(key, s, rows[key, s]) for s in LEVELS) + " |")

table(f"Test perplexity (dense {dense:.2f}), threshold mode; in brackets the share of the sparse model's gap to dense recovered.",
      lambda key, s, r: f"{r['ppl']:.2f}" + ("" if key == "sparse" or recovered(key, s) is None else f" ({recovered(key, s):+.0%})"))
table("\nMeasured average sparsity on held-out text", lambda key, s, r: f"{r['measured']:.1%}")
table("\nWhole `sparsify --calibration` command: wall time and peak RSS", lambda key, s, r: f"{r['seconds']:.0f} s, {r['rss_mb']:.0f} MB")

write_svg(svg_path, LEVELS, [(label, {s: rows[key, s]["ppl"] for s in LEVELS if (key, s) in rows}) for key, label in VARIANTS], dense)
json.dump({"dense_test_perplexity": dense, "runs": {f"{k}-{s}": v for (k, s), v in rows.items()}},
          open(os.path.splitext(svg_path)[0] + ".json", "w"), indent=1)
