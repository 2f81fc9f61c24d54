"""The run's evidence as one self-contained HTML page, laid out by templates/report.html.j2.

Everything the page shows (table cells, chart geometry) is computed here from the typed records
into plain values; the template only lays them out and escapes them.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from harness.evidence.files import redacted, write_text
from harness.evidence.records import DrillRecord, RunRecord
from harness.evidence.trends import ServerTrend

TEMPLATES = Path(__file__).parent / "templates"

# StrictUndefined: a misspelt name in the template fails the render instead of leaving a blank cell.
_ENV = Environment(loader=FileSystemLoader(TEMPLATES),
                   autoescape=select_autoescape(("html", "j2"), default_for_string=True, default=True),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)

PASSED, FAILED = "#1f7a3a", "#b3261e"


def render_html(run: RunRecord, trends: list[ServerTrend] | None = None) -> str:
    """``trends``: per server, its last runs from the run history (None: no history to show)."""
    return _ENV.get_template("report.html.j2").render(
        verified=run.verified,
        summary=run.summary_line(),
        facts=run.facts,
        started=run.facts.get("run_started_utc", ""),
        ended=run.facts.get("run_ended_utc", ""),
        host=run.facts.get("host", ""),
        stack=run.facts.get("stack", ""),
        postgresql=run.facts.get("postgresql", ""),
        barman=run.facts.get("barman", ""),
        backups=", ".join(run.backups()) or "none",
        rows=[_row(drill) for drill in run.drills],
        chart=_bar_chart([(_short(d.nodeid), _rto(d), d.outcome) for d in run.drills if d.restores]),
        kept=run.kept,
        trends=trends,
        history=run.facts.get("run_history", ""))


def write_html(run: RunRecord, path: Path, secrets: list[str], trends: list[ServerTrend] | None = None) -> Path:
    return write_text(path, render_html(redacted(run, secrets), redacted(trends, secrets)))


def _row(drill: DrillRecord) -> dict:
    first = drill.restores[0] if drill.restores else None
    rpo = first.rpo_seconds if first else None
    return {"nodeid": drill.nodeid, "outcome": drill.outcome, "reason": drill.reason,
            "target": _target(drill), "backup": first.backup_id if first else "",
            "rto": f"{_rto(drill):.2f}" if drill.restores else "",
            "rpo": "" if rpo is None else f"{rpo:.3f}"}


def _target(drill: DrillRecord) -> str:
    if not drill.restores:
        return ""
    kind, value = drill.restores[0].target_kind, drill.restores[0].target_value
    return f"{kind} {value}".strip() if kind and value and kind != value else kind


def _rto(drill: DrillRecord) -> float:
    """The drill's recovery time: every restore it made, one after another."""
    return sum(restore.recovery_seconds for restore in drill.restores)


def _short(nodeid: str, width: int = 48) -> str:
    """A chart label: the test's name, shortened in the middle so its parameters stay visible."""
    name = nodeid.split("::")[-1]
    if len(name) <= width:
        return name
    base, bracket, params = name.partition("[")
    tail = bracket + params
    return base[: max(8, width - len(tail) - 1)] + "…" + tail[-(width - 9):]


def _bar_chart(timed: list[tuple[str, float, str]]) -> dict | None:
    """SVG geometry of one horizontal bar per drill: recovery seconds, scaled to the slowest."""
    if not timed:
        return None
    width, bar, gap, label = 900, 18, 6, 330
    top = max(seconds for _, seconds, _ in timed) or 1.0
    bars = []
    for index, (name, seconds, outcome) in enumerate(timed):
        y = index * (bar + gap)
        length = max(2.0, (width - label - 80) * seconds / top)
        bars.append({"label": name, "label_x": label - 8, "text_y": y + bar - 4,
                     "x": label, "y": y, "width": f"{length:.1f}", "height": bar,
                     "colour": PASSED if outcome == "passed" else FAILED,
                     "value_x": f"{label + length + 6:.1f}", "value": f"{seconds:.2f} s"})
    return {"width": width, "height": len(timed) * (bar + gap) + 30, "bars": bars}
