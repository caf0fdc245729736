"""What the study scripts' summaries (docs/*/summarize.py) share: reading a study folder and the plot.

load_runs(out, keys, levels, extra): the dense test perplexity and, per (variant, level) that finished, its
test perplexity, calibration results, time and peak memory (written by docs/*/study.sh), plus extra(c) read
from the sparsify JSON's calibration object.
write_svg(path, levels, series, dense, x_range, x_label): levels are the sparsity (or ratio) strings on the x
axis spanning x_range, series a list of (label, {level: perplexity}) drawn as one line each (a label ending
in " (dashed)" draws a dashed line in the previous series' colour), dense the dashed reference line.
"""
import json, os


def load_runs(out, keys, levels, extra):
    def load(name):
        path = os.path.join(out, name)
        return json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) > 0 else None

    dense = load("dense.eval.json")["perplexity"]
    rows = {}
    for key in keys:
        for s in levels:
            e, sp = load(f"{key}-{s}.eval.json"), load(f"{key}-{s}.sparsify.json")
            if e and sp:
                t = open(os.path.join(out, f"{key}-{s}.time")).read().split()
                c = sp["calibration"]
                rows[key, s] = dict(ppl=e["perplexity"], measured=c["measured_sparsity"], allocation=c["allocation"],
                                    val=c["validation_nll"], seconds=float(t[0]), rss_mb=int(t[2]) / 1024, **extra(c))
    return dense, rows


def write_svg(svg_path, levels, series, dense, x_range=(0.35, 0.75), x_label="average sparsity"):
    W, H, L, R, T, B = 880, 440, 70, 330, 30, 50
    xs = [float(s) for s in levels]
    ys = [p for _, points in series for p in points.values()] + [dense]
    lo, hi = min(ys) * 0.98, max(ys) * 1.02
    X = lambda x: L + (x - x_range[0]) / (x_range[1] - x_range[0]) * (W - L - R)
    Y = lambda y: T + (hi - y) / (hi - lo) * (H - T - B)
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
             f'<rect width="{W}" height="{H}" fill="white"/>',
             f'<line x1="{L}" y1="{H-B}" x2="{W-R}" y2="{H-B}" stroke="black"/><line x1="{L}" y1="{T}" x2="{L}" y2="{H-B}" stroke="black"/>',
             f'<text x="{(L+W-R)/2}" y="{H-12}" text-anchor="middle">{x_label}</text>',
             f'<text x="16" y="{(T+H-B)/2}" transform="rotate(-90 16 {(T+H-B)/2})" text-anchor="middle">test perplexity</text>',
             f'<line x1="{L}" y1="{Y(dense)}" x2="{W-R}" y2="{Y(dense)}" stroke="gray" stroke-dasharray="4 3"/>',
             f'<text x="{W-R+6}" y="{Y(dense)+4}" fill="gray">dense {dense:.2f}</text>']
    for x in xs:
        parts.append(f'<text x="{X(x)}" y="{H-B+16}" text-anchor="middle">{x:.0%}</text>')
    for i in range(6):
        y = lo + (hi - lo) * i / 5
        parts.append(f'<text x="{L-6}" y="{Y(y)+4}" text-anchor="end">{y:.0f}</text>')
    color = -1
    for i, (label, points) in enumerate(series):
        dashed = label.endswith(" (dashed)")
        color += 0 if dashed and color >= 0 else 1
        pts = [(X(float(s)), Y(points[s])) for s in levels if s in points]
        if not pts: continue
        c = colors[color % len(colors)]
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        label = label.removesuffix(" (dashed)")
        parts.append(f'<polyline fill="none" stroke="{c}" stroke-width="2"{dash} points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}"/>')
        parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{c}"/>' for a, b in pts]
        parts.append(f'<rect x="{W-R+10}" y="{T+20+i*20-9}" width="12" height="3" fill="{c}"/><text x="{W-R+28}" y="{T+20+i*20}">{label}</text>')
    parts.append("</svg>")
    open(svg_path, "w").write("\n".join(parts) + "\n")
