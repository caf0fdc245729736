#!/usr/bin/env python3
"""Tabulates docs/calibration/study.sh's results (Markdown on stdout) and draws the perplexity plot (SVG).

Usage: docs/calibration/summarize.py OUT_DIR SVG_PATH   (standard library only)
"""
import json, math, os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from study_results import load_runs, write_svg

out, svg_path = sys.argv[1], sys.argv[2]
VARIANTS = [
    ("uniform", "uniform thresholds"),
    ("uniform-closedform", "uniform + closed form everywhere"),
    ("uniform-auto", "uniform + closed form where it helps (held-out)"),
    ("greedy-block", "greedy, TEAL's block-output objective"),
    ("greedy", "greedy, logits-KL objective"),
    ("greedy-auto", "greedy (logits) + closed form where it helps"),
    ("fiction-uniform-auto", "fiction-calibrated: uniform + auto"),
    ("fiction-greedy-auto", "fiction-calibrated: greedy + auto"),
]
LEVELS = ["0.4", "0.5", "0.6", "0.7"]

dense, rows = load_runs(out, [key for key, _ in VARIANTS], LEVELS,
                        lambda c: dict(compensated=sum(g["compensated"] for g in c["groups"]), groups=len(c["groups"])))

def table(title, cell):
    print(f"{title}\n")
    print("| variant | " + " | ".join(f"{float(s):.0%}" for s in LEVELS) + " |")
    print("| --- |" + " --- |" * len(LEVELS))
    for key, label in VARIANTS:
        print(f"| {label} | " + " | ".join("—" if (key, s) not in rows else cell(key, rows[key, s]) for s in LEVELS) + " |")

table(f"Test perplexity of llama-brown (dense {dense:.2f}); threshold mode; measured average sparsity on held-out text in brackets.",
      lambda key, r: f"{r['ppl']:.2f} ({r['measured']:.1%})"
      + (f", {r['compensated']}/{r['groups']} comp." if key.endswith("auto") else "")
      + (" *uniform kept*" if key.startswith("greedy") and r["allocation"] != "greedy" else ""))
table("\nHeld-out perplexity seen by the calibration (validation windows of valid.txt): dense / uniform / greedy / plan",
      lambda key, r: " / ".join("—" if r["val"][k] is None else f"{math.exp(r['val'][k]):.2f}" for k in ("dense", "uniform", "greedy", "final")))
table("\nCalibration time (s) and peak RSS (MB) of the whole `sparsify --calibration` command",
      lambda key, r: f"{r['seconds']:.0f} s, {r['rss_mb']:.0f} MB")

# The plot: perplexity against sparsity, one line per variant.
write_svg(svg_path, LEVELS, [(label, {s: rows[key, s]["ppl"] for s in LEVELS if (key, s) in rows}) for key, label in VARIANTS], dense)
# The numbers behind the tables, for later comparison.
json.dump({"dense_test_perplexity": dense, "runs": {f"{k}-{s}": v for (k, s), v in rows.items()}},
          open(os.path.splitext(svg_path)[0] + ".json", "w"), indent=1)
