#!/usr/bin/env python3
"""Tables and a plot of perplexity against sparsity for fp32 and int4 llama-brown, from two `report` runs.

  python3 docs/quantization/summarize.py FP32_REPORT.json INT4_REPORT.json OUT_FOLDER

Writes OUT_FOLDER/perplexity.svg and prints the markdown table docs/quantization.md shows. Standard library
only (no matplotlib on the machines these run on).
"""
import json
import sys


def rows(path):
    report = json.load(open(path))
    dense = next(r for r in report["rows"] if r["variant"] == "dense")
    by = {}
    for r in report["rows"]:
        if r["sparsity"] is not None:
            by[(r["variant"], round(r["sparsity"], 2))] = r
    return dense, by, report


def svg(series, path, title):
    width, height, left, right, top, bottom = 640, 400, 60, 160, 30, 50
    xs = sorted({x for _, points, _ in series for x, _ in points})
    ys = [y for _, points, _ in series for _, y in points]
    x0, x1 = min(xs) - 0.05, max(xs) + 0.05
    y0, y1 = min(ys) * 0.98, max(ys) * 1.02
    def px(x): return left + (x - x0) / (x1 - x0) * (width - left - right)
    def py(y): return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2 - 60}" y="18" font-size="14">{title}</text>',
           f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>',
           f'<text x="{(width - right) / 2}" y="{height - 12}">sparsity</text>',
           f'<text x="8" y="{top - 8}">perplexity</text>']
    for x in xs:
        out.append(f'<text x="{px(x) - 10}" y="{height - bottom + 16}">{x:.0%}</text>')
    steps = 6
    for i in range(steps + 1):
        y = y0 + (y1 - y0) * i / steps
        out.append(f'<text x="8" y="{py(y) + 4}">{y:.1f}</text>')
        out.append(f'<line x1="{left}" y1="{py(y)}" x2="{width - right}" y2="{py(y)}" stroke="#eee"/>')
    for i, (name, points, style) in enumerate(series):
        color, dash = style
        d = " ".join(f"{'M' if j == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for j, (x, y) in enumerate(points))
        out.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>')
        for x, y in points:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>')
        out.append(f'<line x1="{width - right + 10}" y1="{top + 18 * i + 6}" x2="{width - right + 30}" y2="{top + 18 * i + 6}" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>')
        out.append(f'<text x="{width - right + 35}" y="{top + 18 * i + 10}">{name}</text>')
    out.append("</svg>")
    open(path, "w").write("\n".join(out))


def main():
    fp32_dense, fp32, _ = rows(sys.argv[1])
    int4_dense, int4, _ = rows(sys.argv[2])
    levels = sorted({s for (_, s) in fp32} | {s for (_, s) in int4})
    print(f"| sparsity | fp32 top-k | fp32 calibrated | int4 top-k | int4 calibrated | int4 gap / fp32 gap, top-k | calibrated |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| 0 (dense) | {fp32_dense['perplexity']:.2f} | | {int4_dense['perplexity']:.2f} | | | |")
    for s in levels:
        def get(by, variant):
            r = by.get((variant, s))
            return r["perplexity"] if r else float("nan")
        ft, fc, it, ic = get(fp32, "topk"), get(fp32, "calibrated"), get(int4, "topk"), get(int4, "calibrated")
        rt = (it - int4_dense["perplexity"]) / (ft - fp32_dense["perplexity"])
        rc = (ic - int4_dense["perplexity"]) / (fc - fp32_dense["perplexity"])
        print(f"| {s:.0%} | {ft:.2f} | {fc:.2f} | {it:.2f} | {ic:.2f} | {rt:.2f} | {rc:.2f} |")
    def points(dense, by, variant):
        return [(0.0, dense["perplexity"])] + [(s, by[(variant, s)]["perplexity"]) for s in levels if (variant, s) in by]
    svg([("fp32 top-k", points(fp32_dense, fp32, "topk"), ("#1f77b4", "6,4")),
         ("fp32 calibrated", points(fp32_dense, fp32, "calibrated"), ("#1f77b4", "")),
         ("int4 top-k", points(int4_dense, int4, "topk"), ("#d62728", "6,4")),
         ("int4 calibrated", points(int4_dense, int4, "calibrated"), ("#d62728", ""))],
        sys.argv[3] + "/perplexity.svg", "llama-brown test perplexity")


main()
