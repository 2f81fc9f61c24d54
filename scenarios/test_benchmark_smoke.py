"""The benchmark runs end to end at its smallest size (figures are printed, never asserted)."""

import json
import subprocess
import sys

from support import ROOT


def test_quick_benchmark_produces_every_figure(tmp_path):
    report = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--report", str(report),
                           "--sections", "generation,fingerprint,overhead,growth"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(report.read_text())
    text = json.dumps(figures)
    for name in ("generation", "fingerprint", "overhead", "growth"):
        assert name in text, f"no {name} figures in {report}"
    assert "rows_per_s" in text or "rows/s" in done.stdout


def test_quick_existing_benchmark_produces_every_figure(tmp_path):
    report = tmp_path / "bench-existing.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "existing.py"), "--quick", "--report", str(report)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = {item["name"] for item in json.loads(report.read_text())["figures"]}
    assert figures == {"harness_vs_bare", "harness_peak_rss_mb"}, f"figures in {report}: {figures}"
