"""The class report: one self-contained HTML page (inline CSS and SVG, nothing fetched).

The score distribution, each exercise's pass rate from the hardest, the mistakes the
harness recognised most often, and a table of students. Every string that a student
controls (ids, messages, causes) is escaped.
"""

from __future__ import annotations

import datetime
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from ..manifest import Manifest
from .classroom import Result
from .gradebook import percent

FILE_NAME = "class-report.html"
BINS = 10  # the histogram's bars: 0-10 %, 10-20 %, ..., 90-100 %
TOP_CAUSES = 5  # recognised mistakes listed per exercise
CAUSE_CHARS = 120  # a cause longer than this is cut (the whole text is its tooltip)
TITLE = "torch-katas: class report"
STATUSES = ("passed", "failed", "todo", "error")


@dataclass
class ExerciseStats:
    qualname: str
    points: int
    passed: int = 0
    failed: int = 0
    todo: int = 0
    error: int = 0
    causes: Counter = field(default_factory=Counter)
    unrecognised: int = 0  # failed, with no likely cause the harness recognised

    @property
    def graded(self) -> int:
        return self.passed + self.failed + self.todo + self.error

    @property
    def rate(self) -> float:
        return self.passed / self.graded if self.graded else 0.0


def bin_of(value: float) -> int:
    """The histogram bar of a percentage; 100 % falls in the last bar."""
    return min(int(value // (100 / BINS)), BINS - 1)


def distribution(graded: list[Result]) -> list[int]:
    counts = [0] * BINS
    for result in graded:
        counts[bin_of(percent(result.grade.points, result.grade.max_points))] += 1
    return counts


def exercise_stats(manifest: Manifest, graded: list[Result]) -> list[ExerciseStats]:
    """One entry per exercise, the lowest pass rate first (the manifest's order among equals)."""
    stats = {ex.qualname: ExerciseStats(ex.qualname, ex.points) for ex in manifest.exercises}
    for result in graded:
        for kata in result.grade.katas:
            for ex in kata.exercises:
                entry = stats.get(ex.qualname)
                if entry is None:
                    continue
                status = ex.status if ex.status in STATUSES else "error"
                setattr(entry, status, getattr(entry, status) + 1)
                if ex.status == "failed":
                    if ex.cause:
                        entry.causes[ex.cause] += 1
                    else:
                        entry.unrecognised += 1
    order = {name: n for n, name in enumerate(stats)}
    return sorted(stats.values(), key=lambda s: (s.rate, order[s.qualname]))


def render(manifest: Manifest, results: list[Result], now: datetime.datetime | None = None) -> str:
    graded = [r for r in results if r.problem is None]
    percents = [percent(r.grade.points, r.grade.max_points) for r in graded]
    now = now or datetime.datetime.now().astimezone()
    facts = [f"{len(results)} students", f"{len(graded)} graded"]
    if len(graded) < len(results):
        facts.append(f"{len(results) - len(graded)} not gradable (see the table)")
    if percents:
        facts += [f"mean {statistics.mean(percents):.1f} %", f"median {statistics.median(percents):.1f} %"]
    facts.append(f"written {now:%Y-%m-%d %H:%M}")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{TITLE}</title><style>{CSS}</style></head><body><main>",
        f'<header><h1>{TITLE}</h1><p class="facts">{escape(" · ".join(facts))}</p></header>',
        '<section id="distribution"><h2>Score distribution</h2>',
        _histogram(distribution(graded)),
        "</section>",
        '<section id="exercises"><h2>Exercises, hardest first</h2>',
        '<p class="note">Pass rate among graded students. A recognised mistake is the likely cause '
        "the harness named in the failure message; other failures are counted as unrecognised.</p>",
        _exercise_table(exercise_stats(manifest, graded)),
        "</section>",
        '<section id="students"><h2>Students</h2>',
        _student_table(manifest, results),
        "</section></main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def write(manifest: Manifest, results: list[Result], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(manifest, results), encoding="utf-8")
    return path


def _histogram(counts: list[int]) -> str:
    width, height, left, bottom, top = 640, 240, 40, 36, 22
    plot_w, plot_h = width - left - 10, height - bottom - top
    step_y = max(1, math.ceil(max(counts) / 4))  # at most five gridlines, at whole numbers
    tallest = max(step_y * math.ceil(max(counts) / step_y), 1)
    step = plot_w / BINS
    label = 100 // BINS
    shapes = [
        f'<svg class="histogram" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        'aria-labelledby="histogram-title">'
        '<title id="histogram-title">Number of students per score range</title>',
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}"/>',
    ]
    for tick in range(0, tallest + 1, step_y):
        y = top + plot_h - plot_h * tick / tallest
        shapes.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>'
        )
    for n, count in enumerate(counts):
        x = left + n * step
        bar_h = plot_h * count / tallest
        low, high = n * label, (n + 1) * label
        shapes.append(
            f'<g class="bin" data-bin="{low}-{high}" data-count="{count}">'
            f"<title>{low}–{high} %: {count} student{'' if count == 1 else 's'}</title>"
            f'<rect x="{x + 3:.1f}" y="{top + plot_h - bar_h:.1f}" '
            f'width="{step - 6:.1f}" height="{bar_h:.1f}"/>'
            f'<text class="count" x="{x + step / 2:.1f}" y="{top + plot_h - bar_h - 5:.1f}" '
            f'text-anchor="middle">{count if count else ""}</text>'
            f'<text class="tick" x="{x + step / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
            f"{low}–{high}</text></g>"
        )
    shapes.append(
        f'<text class="axis-label" x="{left + plot_w / 2}" y="{height - 4}" '
        'text-anchor="middle">score (%)</text>'
    )
    shapes.append("</svg>")
    return "".join(shapes)


def _exercise_table(stats: list[ExerciseStats]) -> str:
    rows = [
        '<table class="exercises"><colgroup><col style="width:24%"><col style="width:6%">'
        '<col style="width:17%"><col style="width:6%"><col style="width:7%"><col style="width:7%">'
        '<col style="width:33%"></colgroup><thead><tr><th>exercise</th><th class="num">points</th>'
        '<th class="rate">pass rate</th><th class="num">failed</th><th class="num">not started</th>'
        '<th class="num">not graded</th><th>most frequent recognised mistakes</th></tr></thead><tbody>'
    ]
    for s in stats:
        share = round(100 * s.rate)
        name = escape(s.qualname).replace("/", "/<wbr>")  # a line breaks after the kata, if anywhere
        causes = "".join(
            f'<li data-count="{count}" title="{escape(cause)}"><span class="times">{count}×</span> '
            f"{escape(_cut(cause))}</li>"
            for cause, count in s.causes.most_common(TOP_CAUSES)
        )
        more = len(s.causes) - TOP_CAUSES
        if more > 0:
            causes += f'<li class="quiet">and {more} other recognised cause{"s" if more > 1 else ""}</li>'
        if s.unrecognised:
            causes += (
                f'<li class="quiet unrecognised" data-count="{s.unrecognised}">'
                f"{s.unrecognised}× failed with no recognised cause</li>"
            )
        rows.append(
            f'<tr data-exercise="{escape(s.qualname)}" data-passed="{s.passed}" data-graded="{s.graded}">'
            f'<td class="exercise"><code>{name}</code></td><td class="num">{s.points}</td>'
            f'<td class="rate"><span class="meter"><span style="width:{share}%"></span></span>'
            f'<span class="share">{share} %</span> <span class="quiet">{s.passed}/{s.graded}</span></td>'
            f'<td class="num">{s.failed or ""}</td><td class="num">{s.todo or ""}</td>'
            f'<td class="num">{s.error or ""}</td>'
            f'<td class="causes"><ul>{causes}</ul></td></tr>'
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def _student_table(manifest: Manifest, results: list[Result]) -> str:
    heads = "".join(
        f'<th class="kata" title="{escape(k.title)}">{escape(k.name.split("_", 1)[0])}</th>'
        for k in manifest.katas
    )
    rows = [
        '<table class="students"><thead><tr><th>student</th><th class="num">score</th><th class="num">%</th>'
        f"{heads}<th>note</th></tr></thead><tbody>"
    ]
    for result in results:
        katas = {k.kata: k for k in result.grade.katas}
        cells = []
        for kata in manifest.katas:
            score = katas.get(kata.name)
            if score is None or result.problem is not None:
                cells.append('<td class="kata"></td>')
                continue
            fraction = score.points / score.max_points if score.max_points else 0.0
            cells.append(
                f'<td class="kata" style="background:{_tint(fraction)}" '
                f'title="{escape(kata.name)}: {score.points}/{score.max_points}">{score.points}</td>'
            )
        grade = result.grade
        if result.problem is not None:
            note = f'<span class="problem">not graded: {escape(_cut(result.problem))}</span>'
        else:
            problems = [k for k in grade.katas if k.problem]
            note = "; ".join(f"{escape(k.kata)}: {escape(_cut(k.problem.splitlines()[0]))}" for k in problems)
        rows.append(
            f'<tr data-student="{escape(result.student)}"><td class="id">{escape(result.student)}</td>'
            f'<td class="num">{grade.points}/{grade.max_points}</td>'
            f'<td class="num">{percent(grade.points, grade.max_points):.1f}</td>{"".join(cells)}'
            f'<td class="note">{note}</td></tr>'
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def _tint(fraction: float) -> str:
    """A light background from red (nothing) through amber to green (everything)."""
    return f"hsl({round(120 * fraction)}, 60%, 88%)"


def _cut(text: str) -> str:
    """The text on one line, up to its first full stop or CAUSE_CHARS characters."""
    text = " ".join(text.split())
    sentence = text.find(". ") + 1
    if 0 < sentence <= CAUSE_CHARS:
        return text[:sentence] if sentence == len(text) else text[:sentence] + " …"
    return text if len(text) <= CAUSE_CHARS else text[: CAUSE_CHARS - 1] + "…"


CSS = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --bar: #3b6fb6; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Noto Sans CJK SC",
  "PingFang SC", "Microsoft YaHei", sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.facts, .note, .quiet { color: var(--muted); }
.note { margin: 0 0 10px; font-size: .9rem; }
code { font: .88rem ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { background: var(--soft); font-weight: 600; position: sticky; top: 0; }
thead th.num { white-space: normal; }
.num, .kata { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th.kata, td.kata { text-align: center; width: 2.6em; }
td.rate { white-space: nowrap; }
.meter { display: inline-block; width: 7em; height: .7em; background: #e6eaef; border-radius: 3px;
  vertical-align: middle; overflow: hidden; }
.meter span { display: block; height: 100%; background: var(--bar); }
.share { display: inline-block; width: 3.2em; text-align: right; font-variant-numeric: tabular-nums; }
table.exercises { table-layout: fixed; }
td.exercise { overflow-wrap: anywhere; }
td.causes ul { margin: 0; padding: 0; list-style: none; }
td.causes li { margin: 0 0 3px; display: flex; gap: .3em; }
td.causes li.quiet { display: block; }
.times { flex: none; min-width: 2.2em; font-weight: 600; font-variant-numeric: tabular-nums; }
td.id { font-weight: 600; overflow-wrap: anywhere; max-width: 16em; }
td.note { color: var(--muted); font-size: .85rem; overflow-wrap: anywhere; }
.problem { color: #a40e26; }
svg.histogram { max-width: 100%; height: auto; display: block; }
svg .bin rect { fill: var(--bar); }
svg .axis { stroke: var(--ink); }
svg .grid { stroke: var(--line); stroke-dasharray: 3 3; }
svg text { font: 12px system-ui, sans-serif; fill: var(--muted); }
svg .count { fill: var(--ink); font-weight: 600; }
@media print {
  body { font-size: 10pt; }
  main { max-width: none; padding: 0; }
  thead th { position: static; }
  tr, li, svg { break-inside: avoid; }
  h2 { break-after: avoid; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""
