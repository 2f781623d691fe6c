"""A self-contained HTML report of one run: plotly figures embedded (plotly.js inline, once), images
inline as data URIs, every string that comes from a run or a user HTML-escaped. Pure: inputs in,
one HTML string out; opens offline in any browser."""

from __future__ import annotations

import datetime as _dt
import html
from dataclasses import dataclass, field

import plotly.io as pio

from dashboard.components.figures import KeyFigure
from dashboard.components.images import data_uri
from dashboard.components.style import KIND_LABELS
from igcore.hypothesis import clause_qualifiers


@dataclass
class DiscoveredSection:
    """One model's discovered concepts as the report shows them (:func:`dashboard.export.discovered_sections`)."""

    source: str  # the model whose layer was factorised
    lead: str  # how many components, of which layer, and what the effects mean
    table_html: str  # already-escaped HTML table of every component
    most_relied: str | None = None  # computed sentence (dashboard.components.text.most_relied_sentence)
    together: list[tuple[str, str]] = field(default_factory=list)  # (what it is, already-escaped HTML table)
    notes: list[str] = field(default_factory=list)
    exemplars: list[tuple[str, list[tuple[bytes, str]]]] = field(default_factory=list)  # (component, [(png, caption)])


@dataclass
class ReportInput:
    run_id: str
    title: str = "IG Microscope report"
    link: str | None = None  # URL of the view the report was exported from
    z_star_sentence: str | None = None  # igcore.hypothesis.summary_sentence
    z_baseline_sentence: str | None = None
    z_star_text: str | None = None  # the engine's rendering of z* (Hypothesis.render)
    z_baseline_text: str | None = None
    z_star_missing: str | None = None  # why the run has no z* (which stage would have written it)
    z_baseline_missing: str | None = None
    z_star_clauses: list[dict] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # computed sentences (dashboard.components.text)
    figures: list[KeyFigure] = field(default_factory=list)  # dashboard.components.figures.key_figures
    contact_sheet: bytes | None = None  # the world's contact sheet (PNG), shown full width
    images: list[tuple[bytes, str]] = field(default_factory=list)  # (png, caption)
    table_html: str | None = None  # already-escaped HTML table (pandas to_html escapes by default)
    notes: list[str] = field(default_factory=list)
    user_ratings: list[dict] = field(default_factory=list)  # added for the run's world after it (rater names!)
    discovered: list[DiscoveredSection] = field(default_factory=list)
    discovered_missing: str | None = None  # why the run has no discovered concepts
    namings: list[dict] = field(default_factory=list)  # names people gave on the Discover page (rater names!)
    named_z_star: str | None = None  # z* re-solved in the names people gave after the run


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


CSS = """
body{font-family:Inter,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}
h1{margin-bottom:.2rem} .meta{color:#666;font-size:.9rem}
.cards{display:grid;grid-template-columns:1fr 1fr;gap:1rem;margin:1.5rem 0}
.card{border:1px solid #ddd;border-radius:8px;padding:1rem} .card h3{margin-top:0}
.ig{border-top:5px solid #2e7d5b} .base{border-top:5px solid #d1495b}
figure{margin:1.2rem 0} figcaption{color:#555;font-size:.9rem}
.gallery{display:flex;flex-wrap:wrap;gap:.8rem} .gallery figure{width:200px;margin:0} .gallery img{width:200px;image-rendering:pixelated}
.gallery.small figure{width:120px} .gallery.small img{width:120px}
.sheet img{width:100%;image-rendering:pixelated}
table{border-collapse:collapse;font-size:.9rem} td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:left}
.note{background:#f5f7fa;border-left:4px solid #8d99ae;padding:.5rem .8rem}
"""


def _card(sentence: str | None, text: str | None, missing: str | None) -> str:
    """A hypothesis card's body: the headline sentence and the engine's field guide, or why there is none."""
    if sentence is None:
        return f"<p class='note'>{_e(missing)}</p>"
    return f"<p><strong>{_e(sentence)}</strong></p>" + (f"<p>{_e(text)}</p>" if text else "")


def build_report(data: ReportInput) -> str:
    """The report as one HTML document (UTF-8)."""
    from plotly.offline import get_plotlyjs

    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(data.title)} · {_e(data.run_id)}</title><style>{CSS}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
        f"<h1>{_e(data.title)}</h1>",
        f"<p class='meta'>Run <code>{_e(data.run_id)}</code> · exported {_e(now)}"
        + (f" · <a href='{_e(data.link)}'>open this view in the dashboard</a>" if data.link else "")
        + "</p>",
        "<div class='cards'>",
        "<div class='card ig'><h3>What the model should have learned (z*)</h3>",
        _card(data.z_star_sentence, data.z_star_text, data.z_star_missing),
        "</div><div class='card base'><h3>What the baseline did learn</h3>",
        _card(data.z_baseline_sentence, data.z_baseline_text, data.z_baseline_missing),
        "</div></div>",
    ]
    if data.findings:
        parts.append("<h2>What this run shows</h2><ul>" + "".join(f"<li>{_e(f)}</li>" for f in data.findings) + "</ul>")
    for note in data.notes:
        parts.append(f"<p class='note'>{_e(note)}</p>")
    if data.z_star_clauses:
        parts.append("<h2>z*, clause by clause</h2><table><tr><th>concept</th><th>is evidence for</th><th>weight</th>"
                     "<th>strength</th><th>kind</th></tr>")
        for c in data.z_star_clauses:
            parts.append(
                f"<tr><td>{_e(c.get('text') or c.get('concept'))}</td><td>{_e(c.get('class'))}</td>"
                f"<td>{float(c.get('weight', 0)):.2f}</td><td>{_e(clause_qualifiers(c))}</td><td>{_e(KIND_LABELS.get(c.get('kind', ''), c.get('kind', '')))}</td></tr>"
            )
        parts.append("</table><p class='meta'>“not specific”: deleting the clause does not change L_M's answers more often where its concept "
                     "is present than where it is absent, beyond chance.</p>")
    if data.table_html:
        parts.append(f"<h2>Accuracy on D′</h2>{data.table_html}")
    for i, fig in enumerate(data.figures):
        if fig.figure is None:
            parts.append(f"<h2>{_e(fig.title)}</h2><p class='note'>{_e(fig.missing)}</p>")
            continue
        body = pio.to_html(fig.figure, full_html=False, include_plotlyjs=False, div_id=f"fig{i}", config={"displaylogo": False})
        parts.append(f"<figure><h2>{_e(fig.title)}</h2>{body}<figcaption>{_e(fig.caption)}</figcaption></figure>")
    parts += _discovered(data)
    if data.contact_sheet:
        parts.append(f"<h2>The world</h2><figure class='sheet'><img alt='contact sheet' src='{data_uri(data.contact_sheet)}'>"
                     "<figcaption>Example images of every split and group of this run's world.</figcaption></figure>")
    if data.images:
        parts.append(f"<h2>Images where the baseline and the IG student disagree</h2>{_gallery(data.images)}")
    if data.user_ratings:
        parts.append("<h2>Ratings added for this world on the Prior page</h2><p>People added these on the dashboard's Prior page; "
                     "this run's z* was solved without them.</p>"
                     "<table><tr><th>rater</th><th>concept</th><th>class</th><th>rating</th></tr>")
        for r in data.user_ratings:
            parts.append(f"<tr><td>{_e(r.get('rater'))}</td><td>{_e(r.get('concept'))}</td><td>{_e(r.get('class'))}</td><td>{_e(r.get('rating'))}</td></tr>")
        parts.append("</table>")
    parts.append("<p class='meta'>Every number and figure here was computed by igcore for this run; nothing was typed in.</p></body></html>")
    return "".join(parts)


def _gallery(pictures: list[tuple[bytes, str]], small: bool = False) -> str:
    return f"<div class='gallery{' small' if small else ''}'>" + "".join(
        f"<figure><img alt='{_e(caption)}' src='{data_uri(png)}'><figcaption>{_e(caption)}</figcaption></figure>"
        for png, caption in pictures) + "</div>"


def _discovered(data: ReportInput) -> list[str]:
    """The section on concepts found in the models (none when the run neither has them nor says why)."""
    if not data.discovered and data.discovered_missing is None:
        return []
    parts = ["<h2>Concepts found in the models, not annotated</h2>"]
    if data.discovered_missing is not None:
        parts.append(f"<p class='note'>{_e(data.discovered_missing)}</p>")
    for section in data.discovered:
        parts.append(f"<h3>In {_e(section.source)}</h3><p>{_e(section.lead)}</p>{section.table_html}")
        if section.most_relied:
            parts.append(f"<p><strong>{_e(section.most_relied)}</strong></p>")
        for heading, table_html in section.together:
            parts.append(f"<p>{_e(heading)}</p>{table_html}")
        parts += [f"<p class='note'>{_e(note)}</p>" for note in section.notes]
        for component, pictures in section.exemplars:
            parts.append(f"<h4>{_e(component)}</h4>{_gallery(pictures, small=True)}")
    if data.namings:
        parts.append("<h3>Names people gave on the dashboard</h3><table><tr><th>component</th><th>name</th><th>named by</th><th>when</th></tr>")
        parts += [f"<tr><td>{_e(n.get('component'))}</td><td>{_e(n.get('text'))}</td><td>{_e(n.get('rater'))}</td><td>{_e(n.get('when'))}</td></tr>"
                  for n in data.namings]
        parts.append("</table>")
    if data.named_z_star:
        parts.append("<h3>z* re-solved in the named words</h3><p>This run's z* was solved before people named these "
                     f"concepts; solved again on the run's own judgments in the words they gave, it reads:</p><p><strong>{_e(data.named_z_star)}</strong></p>")
    return parts

