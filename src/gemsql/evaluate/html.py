"""One self-contained HTML page: headline rates and accuracy by category, runs side by side.

Charts are inline SVG (no scripts, no network), so the page opens anywhere and can be attached to a
ticket as a single file.
"""

from __future__ import annotations

from html import escape

from gemsql.evaluate.score import FAILURES

COLORS = ["#9aa5b1", "#2f80ed", "#27ae60", "#eb5757"]
STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:980px;color:#1f2933;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #d9e2ec;padding:.3rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left}.legend span{display:inline-block;margin-right:1rem}
.sw{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:-1px}
code{background:#f0f4f8;padding:0 .2rem}pre{white-space:pre-wrap;background:#f0f4f8;padding:.4rem}
"""


def bars(groups: list[str], runs: list[dict], values: list[list[float | None]]) -> str:
    """Grouped horizontal bars: one group per category, one bar per run (value in 0..1)."""
    bar, gap, label_w, width = 14, 10, 220, 520
    height = len(groups) * (bar * len(runs) + gap) + 10
    parts = [f'<svg width="{label_w + width + 60}" height="{height}" role="img">']
    y = 5
    for g, group in enumerate(groups):
        parts.append(f'<text x="{label_w - 8}" y="{y + bar * len(runs) / 2 + 4}" text-anchor="end">{escape(group)}</text>')
        for r, _ in enumerate(runs):
            v = values[g][r]
            w = 0 if v is None else max(1, v * width)
            parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar - 2}" fill="{COLORS[r % len(COLORS)]}"/>')
            text = "–" if v is None else f"{v:.1%}"
            parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + bar - 4}" font-size="11">{text}</text>')
            y += bar
        y += gap
    parts.append("</svg>")
    return "".join(parts)


def page(runs: list[dict], title: str = "gemsql evaluation", flipped: list[dict] | None = None) -> str:
    legend = "".join(
        f'<span><i class="sw" style="background:{COLORS[i % len(COLORS)]}"></i>{escape(m["label"])}</span>'
        for i, m in enumerate(runs)
    )
    rows = "".join(
        f"<tr><td>{escape(m['label'])}</td><td>{m['examples']}</td><td>{m['exec_match']:.1%}</td>"
        f"<td>{m['exact_match']:.1%}</td><td>{m['valid']:.1%}</td><td>{m.get('gold_errors', 0)}</td></tr>"
        for m in runs
    )
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="legend">{legend}</p>',
        "<table><tr><th>model</th><th>examples</th><th>execution accuracy</th><th>exact match</th>"
        f"<th>valid SQL</th><th>broken gold</th></tr>{rows}</table>",
        "<h2>Overall</h2>",
        bars(["execution accuracy", "exact match", "valid SQL"], runs,
              [[m[k] for m in runs] for k in ("exec_match", "exact_match", "valid")]),
    ]
    kinds = [k for k in FAILURES if any(m.get("failures", {}).get(k) for m in runs)]
    if kinds:
        head = "".join(f"<th>{escape(m['label'])}</th>" for m in runs)
        cells = "".join(
            f"<tr><td>{escape(k)}</td>"
            + "".join(f"<td>{m['failures'].get(k, 0) if 'failures' in m else '-'}</td>" for m in runs) + "</tr>"
            for k in kinds)
        body += ["<h2>Why answers fail</h2>", f"<table><tr><th>failure</th>{head}</tr>{cells}</table>"]
    for column in sorted({c for m in runs for c in m.get("by", {})}):
        groups = sorted({v for m in runs for v in m.get("by", {}).get(column, {})})
        values = [[(m.get("by", {}).get(column, {}).get(g) or {}).get("exec_match") for m in runs] for g in groups]
        body += [f"<h2>Execution accuracy by {escape(column)}</h2>", bars(groups, runs, values)]
    if flipped is not None:
        body.append(f"<h2>Examples that flipped ({len(flipped)})</h2>")
        for f in flipped[:200]:
            body.append(
                f"<p><b>{escape(str(f['id']))}</b> {escape(f['direction'])}: {escape(str(f.get('question') or ''))}</p>"
                f"<pre>gold: {escape(str(f['gold']))}\n{escape(runs[0]['label'])}: {escape(str(f['a']))}\n"
                f"{escape(runs[1]['label'])}: {escape(str(f['b']))}</pre>"
            )
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")
