"""The HTML report of a pipeline run: ``<run_dir>/report.html``.

Built only from what the run left in its folder: ``manifest.json`` (status,
duration, parameters, git revision, failing cell), the executed notebooks
(each also converted to ``notebooks/<step>.html`` with nbconvert), the
figures under ``figures/`` (embedded as images) and the key tables under
``tables/`` (first rows shown). The report is self-contained apart from
links to files in the same folder, so the folder can be zipped and mailed.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

__all__ = ["KEY_TABLES", "render_report", "convert_notebooks"]

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ m.pipeline }} {{ m.run_id }}: {{ m.status }}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{margin-bottom:.2em} .muted{color:#666}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}
.ok{color:#1a7f37;font-weight:600}.failed{color:#cf222e;font-weight:600}
.skipped,.pending,.running{color:#9a6700;font-weight:600}
pre{background:#f6f8fa;padding:.6em;overflow:auto;font-size:.85em;max-height:25em}
figure{display:inline-block;margin:.5em;vertical-align:top;max-width:520px}
figure img{max-width:100%;border:1px solid #eee} figcaption{font-size:.85em;color:#555}
</style></head><body>
<h1>{{ m.pipeline }} <span class="{{ m.status }}">{{ m.status }}</span></h1>
<p class="muted">run <b>{{ m.run_id }}</b> &middot; started {{ m.started_at }} &middot;
finished {{ m.finished_at }} &middot; {{ "%.1f"|format(m.duration_s or 0) }} s &middot;
git {{ (m.git.revision[:12] ~ (" (dirty)" if m.git.dirty else "")) if m.git else "n/a" }} &middot;
winback_ml {{ m.winback_ml_version }} &middot; Python {{ m.python }}</p>
{% if m.description %}<p>{{ m.description }}</p>{% endif %}
<h2>Steps</h2>
<table><tr><th>#</th><th>step</th><th>status</th><th>duration</th><th>depends on</th><th>notebook</th></tr>
{% for s in m.steps %}<tr><td>{{ loop.index }}</td><td>{{ s.name }}</td>
<td class="{{ s.status }}">{{ s.status }}{% if s.skipped_because %}<br><span class="muted">{{ s.skipped_because }}</span>{% endif %}</td>
<td>{{ "%.1f s"|format(s.duration_s) if s.duration_s is not none else "" }}</td>
<td>{{ s.depends_on|join(", ") }}</td>
<td>{% if s.exists %}<a href="{{ s.output_notebook }}">ipynb</a>{% endif %}
{% if s.html %} &middot; <a href="{{ s.html }}">html</a>{% endif %}</td></tr>
{% endfor %}</table>
{% for s in m.steps if s.error %}
<h3 class="failed">Step {{ s.name }} failed at cell {{ s.error.source_cell_index }}
(cell {{ s.error.cell_index }} of the output notebook)</h3>
<p><b>{{ s.error.ename }}</b>: {{ s.error.evalue }}</p>
{% if s.error.cell_source %}<p>Cell source:</p><pre>{{ s.error.cell_source }}</pre>{% endif %}
{% if s.error.traceback %}<details><summary>Traceback</summary><pre>{{ s.error.traceback }}</pre></details>{% endif %}
{% endfor %}
{% if figures %}<h2>Figures</h2>
{% for f in figures %}<figure><img src="data:image/png;base64,{{ f.b64 }}" alt="{{ f.name }}">
<figcaption>{{ f.name }}</figcaption></figure>{% endfor %}{% endif %}
{% if tables %}<h2>Key tables</h2>
{% for t in tables %}<h3>{{ t.name }} <span class="muted">({{ t.rows }} rows{% if t.rows > t.shown %}, first {{ t.shown }} shown{% endif %};
<a href="{{ t.path }}">csv</a>)</span></h3>{{ t.html }}{% endfor %}{% endif %}
<h2>Parameters</h2>
<table>{% for k, v in m.parameters.items() %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}</table>
<p class="muted">Manifest: <a href="manifest.json">manifest.json</a>. Pipeline file: {{ m.pipeline_file }}</p>
</body></html>
"""


def convert_notebooks(run_dir: str | Path) -> dict[str, str]:
    """Convert each executed notebook of a run to HTML beside it; return step -> relative path."""
    import nbformat
    from nbconvert import HTMLExporter

    run_dir = Path(run_dir)
    exporter = HTMLExporter()
    out: dict[str, str] = {}
    for nb_path in sorted((run_dir / "notebooks").glob("*.ipynb")):
        try:
            nb = nbformat.read(nb_path, as_version=4)
            body, _ = exporter.from_notebook_node(nb)
        except Exception:  # a notebook nbconvert cannot render still has its ipynb link
            continue
        target = nb_path.with_suffix(".html")
        target.write_text(body, encoding="utf-8")
        out[nb_path.stem] = str(target.relative_to(run_dir))
    return out


#: Tables shown first in the report (the rest follow alphabetically).
KEY_TABLES = ("kpi_summary", "plan_comparison", "top_targets", "segment_mix", "offer_type_effects")


def _tables(run_dir: Path, max_rows: int = 15) -> list[dict[str, Any]]:
    import pandas as pd

    from winback_ml.pipelines.context import PII_COLUMNS

    out = []
    paths = sorted((run_dir / "tables").glob("*.csv"))
    rank = {name: i for i, name in enumerate(KEY_TABLES)}
    paths.sort(key=lambda p: (rank.get(p.stem, len(rank)), p.stem))
    for p in paths:
        try:
            df = pd.read_csv(p)
        except Exception:
            continue
        if set(map(str, df.columns)) & PII_COLUMNS:  # written around save_table: never shown
            continue
        shown = df.head(max_rows)
        out.append(
            {
                "name": p.stem,
                "rows": len(df),
                "shown": len(shown),
                "path": str(p.relative_to(run_dir)),
                "html": shown.to_html(index=False, float_format=lambda x: f"{x:,.4g}", border=0),
            }
        )
    return out


def render_report(run_dir: str | Path, *, notebooks_html: bool = True) -> Path:
    """Write ``report.html`` for a run folder; return its path.

    Parameters
    ----------
    run_dir : a folder written by :func:`winback_ml.pipelines.runner.execute_plan`.
    notebooks_html : also convert the executed notebooks to HTML.
    """
    import jinja2
    from markupsafe import Markup

    run_dir = Path(run_dir)
    m = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    html_links = convert_notebooks(run_dir) if notebooks_html else {}
    for s in m["steps"]:
        s["exists"] = (run_dir / s["output_notebook"]).exists()
        s["html"] = html_links.get(s["name"])
    figures = [
        {"name": p.stem, "b64": base64.b64encode(p.read_bytes()).decode("ascii")}
        for p in sorted((run_dir / "figures").glob("*.png"))
    ]
    env = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined)
    tables = _tables(run_dir)
    for t in tables:  # pandas escapes cell text itself; everything else is escaped here
        t["html"] = Markup(t["html"])
    out = env.from_string(_TEMPLATE).render(m=m, figures=figures, tables=tables)
    target = run_dir / "report.html"
    target.write_text(out, encoding="utf-8")
    return target
