#!/usr/bin/env python3
"""Tabulates docs/calibration/study.sh's results (Markdown on stdout) and draws the perplexity plot (SVG).

Usage: docs/calibration/summarize.py OUT_DIR SVG_PATH   (standard library only)
"""
import json, math, os, sys

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

def load(name):
    path = os.path.join(out, name)
    return json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) > 0 else None

dense = load("dense.eval.json")["perplexity"]
rows = {}
for key, _ in VARIANTS:
    for s in LEVELS:
        e, sp = load(f"{key}-{s}.eval.json"), load(f"{key}-{s}.sparsify.json")
        if e and sp:
            t = open(os.path.join(out, f"{key}-{s}.time")).read().split()
            c = sp["calibration"]
            rows[key, s] = dict(ppl=e["perplexity"], measured=c["measured_sparsity"], allocation=c["allocation"],
                                val=c["validation_nll"], seconds=float(t[0]), rss_mb=int(t[2]) / 1024,
                                compensated=sum(g["compensated"] for g in c["groups"]), groups=len(c["groups"]))

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
W, H, L, R, T, B = 880, 440, 70, 330, 30, 50
xs = [float(s) for s in LEVELS]
ys = [r["ppl"] for r in rows.values()] + [dense]
lo, hi = min(ys) * 0.98, max(ys) * 1.02
X = lambda x: L + (x - 0.35) / 0.4 * (W - L - R)
Y = lambda y: T + (hi - y) / (hi - lo) * (H - T - B)
colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<line x1="{L}" y1="{H-B}" x2="{W-R}" y2="{H-B}" stroke="black"/><line x1="{L}" y1="{T}" x2="{L}" y2="{H-B}" stroke="black"/>',
         f'<text x="{(L+W-R)/2}" y="{H-12}" text-anchor="middle">average sparsity</text>',
         f'<text x="16" y="{(T+H-B)/2}" transform="rotate(-90 16 {(T+H-B)/2})" text-anchor="middle">test perplexity</text>',
         f'<line x1="{L}" y1="{Y(dense)}" x2="{W-R}" y2="{Y(dense)}" stroke="gray" stroke-dasharray="4 3"/>',
         f'<text x="{W-R+6}" y="{Y(dense)+4}" fill="gray">dense {dense:.2f}</text>']
for x in xs:
    parts.append(f'<text x="{X(x)}" y="{H-B+16}" text-anchor="middle">{x:.0%}</text>')
for i in range(6):
    y = lo + (hi - lo) * i / 5
    parts.append(f'<text x="{L-6}" y="{Y(y)+4}" text-anchor="end">{y:.0f}</text>')
for i, (key, label) in enumerate(VARIANTS):
    pts = [(X(float(s)), Y(rows[key, s]["ppl"])) for s in LEVELS if (key, s) in rows]
    if not pts: continue
    c = colors[i % len(colors)]
    parts.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}"/>')
    parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{c}"/>' for a, b in pts]
    parts.append(f'<rect x="{W-R+10}" y="{T+20+i*20-9}" width="12" height="3" fill="{c}"/><text x="{W-R+28}" y="{T+20+i*20}">{label}</text>')
parts.append("</svg>")
open(svg_path, "w").write("\n".join(parts) + "\n")
# The numbers behind the tables, for later comparison.
json.dump({"dense_test_perplexity": dense, "runs": {f"{k}-{s}": v for (k, s), v in rows.items()}},
          open(os.path.splitext(svg_path)[0] + ".json", "w"), indent=1)
