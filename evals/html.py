"""One self-contained HTML page: the table, the model card's plot (accuracy against
reasoning tokens, one point per effort, inline SVG) and every transcript, reasoning folded.
No scripts, fonts or images from anywhere else."""

from __future__ import annotations

import math
from html import escape
from typing import TYPE_CHECKING, Any

from evals.report import effort_order, pct

if TYPE_CHECKING:
    from evals.report import Report, Row

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 80rem; }
table { border-collapse: collapse; margin: 1rem 0; font-size: .85rem; }
th, td { border: 1px solid #ccc; padding: .2rem .4rem; text-align: right; }
td { white-space: nowrap; }
th { background: #f3f3f3; } td:first-child, td:nth-child(2) { text-align: left; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; }
details.sample { border: 1px solid #ddd; margin: .25rem 0; padding: .25rem .5rem; }
details.reasoning { color: #666; } .msg { margin: .5rem 0; }
pre { white-space: pre-wrap; word-break: break-word; margin: .25rem 0; }
.correct { color: #137333; } .wrong { color: #b3261e; } .no_answer, .truncated { color: #a15c00; }
.error { color: #7b1fa2; }
.tool { background: #f5f7ff; border-left: 3px solid #5b6ee1; padding: .25rem .5rem; }
.role { font-weight: 600; }
"""

COLORS = {"low": "#5b8def", "medium": "#f2a93b", "high": "#d9534f"}


def html_page(report: Report) -> str:
    settings = report.settings
    title = f"oss-agent eval: {escape(settings.model) if settings else 'results'}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{title}</title><style>{STYLE}</style></head><body>",
        f"<h1>{title}</h1>",
    ]
    if settings is not None:
        parts.append(
            "<p>"
            + escape(
                f"tools: {', '.join(settings.tools) or 'none'}; repeats: {settings.repeats}; "
                f"max tokens per turn: {settings.max_tokens}; "
                f"temperature: {_temperature(settings.temperature)}"
            )
            + "</p>"
        )
    parts += ["<h2>Results</h2>", _table(report), "<h2>Accuracy against reasoning tokens</h2>"]
    parts.append('<div class="plots">')
    for name in sorted({r.benchmark for r in report.rows}):
        rows = sorted(
            (r for r in report.rows if r.benchmark == name), key=lambda r: effort_order(r.effort)
        )
        parts.append(plot(name, rows))
    parts.append("</div>")
    parts += ["<h2>Transcripts</h2>", _transcripts(report.records), "</body></html>"]
    return "\n".join(parts)


def _temperature(value: float | None) -> str:
    return "the model's default" if value is None else str(value)


def _table(report: Report) -> str:
    head = (
        "benchmark",
        "effort",
        "accuracy %",
        "95% CI",
        "n",
        "no answer",
        "truncated",
        "errors",
        "reasoning tok",
        "total tok",
        "p50 s",
        "p90 s",
        "tool calls",
        "parser repairs",
        "published 20b",
        "published 120b",
    )
    rows = []
    for r in report.rows:
        cells = (
            r.benchmark,
            r.effort,
            pct(r.accuracy),
            f"{pct(r.ci_low)}\u2013{pct(r.ci_high)}",
            r.samples,
            r.no_answer,
            r.truncated,
            r.errors,
            f"{r.reasoning_tokens:.0f}",
            f"{r.completion_tokens:.0f}",
            f"{r.latency_p50:.2f}",
            f"{r.latency_p90:.2f}",
            f"{r.tool_calls:.2f}",
            r.recoveries,
            _published(r, "gpt-oss-20b"),
            _published(r, "gpt-oss-120b"),
        )
        rows.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    table = [
        '<table id="results"><thead><tr>',
        "".join(f"<th>{h}</th>" for h in head),
        "</tr></thead><tbody>",
        *rows,
        "</tbody></table>",
    ]
    if report.differences:
        table.append(
            '<table id="differences"><thead><tr><th>benchmark</th><th>effort change</th>'
            "<th>accuracy change (points)</th><th>95% paired CI</th><th>items</th></tr>"
            "</thead><tbody>"
        )
        for d in report.differences:
            change = "n/a" if not math.isfinite(d.difference) else f"{100 * d.difference:+.1f}"
            ci = (
                "n/a"
                if not math.isfinite(d.ci_low)
                else f"{100 * d.ci_low:+.1f} to {100 * d.ci_high:+.1f}"
            )
            table.append(
                f"<tr><td>{escape(d.benchmark)}</td><td>{d.from_} &rarr; {d.to}</td>"
                f"<td>{change}</td><td>{ci}</td><td>{d.items}</td></tr>"
            )
        table.append("</tbody></table>")
    return "".join(table)


def _published(row: Row, model: str) -> str:
    return f"{row.published[model]:.1f}" if model in row.published else "-"


def plot(name: str, rows: list[Row], width: int = 420, height: int = 300) -> str:
    """Accuracy (%) against mean reasoning tokens per sample, one point per effort, with the
    95% interval as a bar. The x axis is logarithmic, as the model card draws it."""
    left, right, top, bottom = 56, 16, 28, 44
    points = [r for r in rows if math.isfinite(r.accuracy)]
    xs = [max(r.reasoning_tokens, 1.0) for r in points] or [1.0]
    lo_x, hi_x = math.log10(min(xs)), math.log10(max(xs))
    if hi_x - lo_x < 1:  # at least one decade wide
        lo_x, hi_x = lo_x - 0.5, hi_x + 0.5

    def x(tokens: float) -> float:
        return left + (math.log10(max(tokens, 1.0)) - lo_x) / (hi_x - lo_x) * (width - left - right)

    def y(accuracy: float) -> float:
        return top + (1 - accuracy) * (height - top - bottom)

    svg = [
        f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(name)}: accuracy against reasoning tokens">',
        f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13">{escape(name)}</text>',
        f'<line x1="{left}" y1="{y(0)}" x2="{width - right}" y2="{y(0)}" stroke="#888"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{y(0)}" stroke="#888"/>',
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        svg.append(
            f'<text x="{left - 6}" y="{y(tick) + 4}" text-anchor="end" font-size="10">'
            f"{tick * 100:.0f}</text>"
            f'<line x1="{left}" y1="{y(tick)}" x2="{width - right}" y2="{y(tick)}" stroke="#eee"/>'
        )
    for decade in range(math.ceil(lo_x), math.floor(hi_x) + 1):
        svg.append(
            f'<text x="{x(10**decade)}" y="{y(0) + 14}" text-anchor="middle" font-size="10">'
            f"{10**decade:,}</text>"
        )
    svg.append(
        f'<text x="{(left + width - right) / 2}" y="{height - 8}" text-anchor="middle" '
        'font-size="11">'
        "mean reasoning tokens per sample (log)</text>"
        f'<text x="14" y="{(top + y(0)) / 2}" text-anchor="middle" font-size="11" '
        f'transform="rotate(-90 14 {(top + y(0)) / 2})">accuracy %</text>'
    )
    if len(points) > 1:
        path = " ".join(f"{x(r.reasoning_tokens):.1f},{y(r.accuracy):.1f}" for r in points)
        svg.append(f'<polyline points="{path}" fill="none" stroke="#999" stroke-dasharray="4 3"/>')
    for r in points:
        cx, color = x(r.reasoning_tokens), COLORS.get(r.effort, "#333")
        if math.isfinite(r.ci_low):
            svg.append(
                f'<line x1="{cx:.1f}" y1="{y(r.ci_low):.1f}" x2="{cx:.1f}" y2="{y(r.ci_high):.1f}" '
                f'stroke="{color}" stroke-width="2"/>'
            )
        svg.append(
            f'<circle class="point" data-effort="{escape(r.effort)}" cx="{cx:.1f}" '
            f'cy="{y(r.accuracy):.1f}" r="5" fill="{color}"><title>{escape(r.effort)}: '
            f"{pct(r.accuracy)}% at {r.reasoning_tokens:.0f} tokens</title></circle>"
            f'<text x="{cx + 8:.1f}" y="{y(r.accuracy) - 6:.1f}" font-size="11">'
            f"{escape(r.effort)}</text>"
        )
    svg.append("</svg>")
    return "".join(svg)


def _transcripts(records: list[dict[str, Any]]) -> str:
    ordered = sorted(
        records,
        key=lambda r: (r["benchmark"], effort_order(r["effort"]), str(r["item"]), r["repeat"]),
    )
    return "\n".join(_sample(r) for r in ordered)


def _sample(record: dict[str, Any]) -> str:
    outcome = record["outcome"]
    usage = record["usage"]
    summary = (
        f"{escape(record['benchmark'])} / {escape(record['effort'])} / "
        f"item {escape(str(record['item']))}"
        f' / repeat {record["repeat"]}: <span class="{outcome}">{outcome.replace("_", " ")}</span>'
        f" ({usage['reasoning_tokens']} reasoning tokens, {record['seconds']:.1f} s)"
    )
    body = [f'<details class="sample"><summary>{summary}</summary>']
    for message in record.get("transcript", []):
        body.append(_message(message))
    grade = (
        f"gold: {record['gold']}; extracted: {record['extracted']}; "
        f"stop: {record['stop_reason']}; {record['detail']}"
    )
    body.append(f'<p class="grade">{escape(grade)}</p></details>')
    return "".join(body)


def _message(message: dict[str, Any]) -> str:
    text = escape(message["text"])
    role = message["role"]
    if role == "assistant" and message["channel"] == "analysis":
        return (
            '<details class="reasoning msg"><summary>reasoning</summary>'
            f"<pre>{text}</pre></details>"
        )
    if role == "assistant" and message.get("recipient"):
        return (
            f'<div class="tool msg"><span class="role">tool call &rarr; '
            f"{escape(message['recipient'])}</span><pre>{text}</pre></div>"
        )
    if role == "tool":
        return (
            f'<div class="tool msg"><span class="role">{escape(message.get("name") or "tool")} '
            f"result</span><pre>{text}</pre></div>"
        )
    label = "answer" if message.get("channel") == "final" else role
    return f'<div class="msg"><span class="role">{escape(label)}</span><pre>{text}</pre></div>'
