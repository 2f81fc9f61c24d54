"""Evidence of a run for auditors: one JSON document and one self-contained HTML page.

Written from plain data (run facts + one record per drill), so any driver of the drills (the
pytest plugin, a nightly script) can produce the same files.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.process.redact import redact


@dataclass
class DrillResult:
    nodeid: str
    outcome: str                      # passed | failed | skipped | error
    seconds: float
    reason: str = ""                  # first lines of the failure or skip reason
    properties: dict = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        return self.outcome == "passed"


@dataclass
class RunEvidence:
    facts: dict = field(default_factory=dict)
    drills: list[DrillResult] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def counts(self) -> dict:
        counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
        for drill in self.drills:
            counts[drill.outcome] = counts.get(drill.outcome, 0) + 1
        return counts

    def backups(self) -> list[str]:
        ids = []
        for drill in self.drills:
            for key, value in drill.properties.items():
                if key.endswith("backup_id") and value and value not in ids:
                    ids.append(value)
        return ids

    def summary_line(self) -> str:
        c = self.counts()
        total = sum(c.values())
        verdict = "VERIFIED" if c["failed"] == c["error"] == 0 and c["passed"] else "NOT VERIFIED"
        return (f"{verdict}: {c['passed']}/{total} drills passed, {c['failed']} failed, {c['error']} errors, "
                f"{c['skipped']} skipped; {len(self.backups())} backups used")

    def to_dict(self) -> dict:
        return {"run": self.facts, "summary": self.summary_line(), "counts": self.counts(),
                "kept": self.kept, "drills": [asdict(drill) for drill in self.drills]}


def utc_stamp(moment: dt.datetime | None = None) -> str:
    return (moment or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def write_json(evidence: RunEvidence, path: Path, secrets: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redact(json.dumps(evidence.to_dict(), indent=2, sort_keys=False), secrets) + "\n")
    return path


def write_html(evidence: RunEvidence, path: Path, secrets: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redact(render_html(evidence), secrets))
    return path


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _target(drill: DrillResult) -> str:
    p = drill.properties
    kind = p.get("target_kind") or p.get("restore1_target_kind", "")
    value = p.get("target_value") or p.get("restore1_target_value", "")
    return f"{kind} {value}".strip() if kind and kind != value else kind


def _rto(drill: DrillResult) -> float | None:
    values = [float(v) for k, v in drill.properties.items() if k.endswith("recovery_seconds") and v]
    return sum(values) if values else None


def _first(drill: DrillResult, suffix: str) -> str:
    for key, value in drill.properties.items():
        if key.endswith(suffix) and value:
            return str(value)
    return ""


def render_html(evidence: RunEvidence) -> str:
    facts = evidence.facts
    counts = evidence.counts()
    ok = counts["failed"] == counts["error"] == 0 and counts["passed"] > 0
    rows = []
    for drill in evidence.drills:
        rto = _rto(drill)
        rows.append(
            f"<tr class='{_e(drill.outcome)}'><td class='name'>{_e(drill.nodeid)}</td>"
            f"<td><span class='badge {_e(drill.outcome)}'>{_e(drill.outcome)}</span></td>"
            f"<td>{_e(_target(drill))}</td><td>{_e(_first(drill, 'backup_id'))}</td>"
            f"<td class='num'>{'' if rto is None else f'{rto:.2f}'}</td>"
            f"<td class='num'>{_e(_first(drill, 'rpo_seconds'))}</td>"
            f"<td class='reason'>{_e(drill.reason)}</td></tr>")
    timed = [(_short(d.nodeid), _rto(d), d.outcome) for d in evidence.drills if _rto(d) is not None]
    chart = _bar_chart(timed)
    facts_rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts.items())
    kept = "".join(f"<li><code>{_e(path)}</code></li>" for path in evidence.kept) or "<li>none</li>"
    backups = ", ".join(evidence.backups()) or "none"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Backup verification drills {_e(facts.get('run_started_utc', ''))}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #1d2430; background: #fff; }}
h1 {{ margin-bottom: 0.2em; }}
.verdict {{ font-size: 1.3em; padding: 0.6em 1em; border-radius: 6px; display: inline-block; color: #fff; }}
.verdict.ok {{ background: #1f7a3a; }} .verdict.bad {{ background: #b3261e; }}
table {{ border-collapse: collapse; margin: 1em 0; width: 100%; }}
th, td {{ border: 1px solid #ccd3dd; padding: 0.35em 0.6em; text-align: left; vertical-align: top; }}
th {{ background: #eef2f7; }}
td.name {{ word-break: break-all; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
td.reason {{ font-family: monospace; font-size: 0.85em; white-space: pre-wrap; max-width: 40em; }}
.badge {{ padding: 0.1em 0.5em; border-radius: 4px; color: #fff; font-weight: 600; }}
.badge.passed {{ background: #1f7a3a; }} .badge.failed, .badge.error {{ background: #b3261e; }}
.badge.skipped {{ background: #6b7280; }}
table.facts {{ width: auto; }}
</style></head><body>
<h1>Backup verification drills</h1>
<p class="verdict {'ok' if ok else 'bad'}" id="verdict">{_e(evidence.summary_line())}</p>
<h2>Summary</h2>
<p>Each drill restored a Barman backup of the source server into a scratch PostgreSQL instance, waited until
recovery reached its target (time, xid, LSN, restore point, immediate or latest) as the server reported it, and
compared the restored books table (row count and checksum) with what the source held at that target.</p>
<p>Run on <b>{_e(facts.get('host', ''))}</b> from {_e(facts.get('run_started_utc', ''))} to
{_e(facts.get('run_ended_utc', ''))}, stack <b>{_e(facts.get('stack', ''))}</b>, PostgreSQL
{_e(facts.get('postgresql', ''))}, Barman {_e(facts.get('barman', ''))}. Backups restored: {_e(backups)}.</p>
<h2>Drills</h2>
<table id="drills"><thead><tr><th>drill</th><th>result</th><th>target</th><th>backup</th>
<th>recovery s (RTO)</th><th>data-loss window s (RPO)</th><th>reason</th></tr></thead>
<tbody>
{''.join(rows)}
</tbody></table>
<h2>Recovery time per drill</h2>
{chart}
<h2>Versions and run facts</h2>
<table class="facts">{facts_rows}</table>
<h2>Kept evidence</h2>
<ul>{kept}</ul>
</body></html>
"""


def _short(nodeid: str, width: int = 48) -> str:
    """A chart label: the test's name, shortened in the middle so its parameters stay visible."""
    name = nodeid.split("::")[-1]
    if len(name) <= width:
        return name
    base, bracket, params = name.partition("[")
    tail = bracket + params
    return base[: max(8, width - len(tail) - 1)] + "…" + tail[-(width - 9):]


def _bar_chart(timed: list[tuple[str, float, str]]) -> str:
    if not timed:
        return "<p>No drill recovered a backup.</p>"
    width, bar, gap, label = 900, 18, 6, 330
    top = max(seconds for _, seconds, _ in timed) or 1.0
    height = len(timed) * (bar + gap) + 30
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
             f"aria-label='recovery seconds per drill'>"]
    for index, (name, seconds, outcome) in enumerate(timed):
        y = index * (bar + gap)
        length = max(2, (width - label - 80) * seconds / top)
        colour = "#1f7a3a" if outcome == "passed" else "#b3261e"
        parts.append(f"<text x='{label - 8}' y='{y + bar - 4}' text-anchor='end' font-size='12'>{_e(name)}</text>"
                     f"<rect x='{label}' y='{y}' width='{length:.1f}' height='{bar}' fill='{colour}'/>"
                     f"<text x='{label + length + 6:.1f}' y='{y + bar - 4}' font-size='12'>{seconds:.2f} s</text>")
    parts.append("</svg>")
    return "".join(parts)
