"""The dashboard's pages: one registry entry per page, and everything else derives from it.

The router (``app.py``) builds its ``st.navigation`` from :data:`PAGES`; the Share page writes one link per
entry from its URL path and the view keys it reads; the tests open every entry; the benches click every
sidebar link by its title. Adding a page is one file in ``app_pages/`` and one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

APP_PAGES = Path(__file__).resolve().parent / "app_pages"


@dataclass(frozen=True)
class PageSpec:
    """One page of the dashboard.

    Attributes:
        name: the file stem in ``app_pages/`` (``hypotheses`` -> ``app_pages/hypotheses.py``).
        title: the sidebar link's text and the browser tab's title.
        icon: a Material icon (``:material/insights:``).
        url_path: where Streamlit serves it (``hypotheses``); the default page is served at the root.
        keys: the view keys (:class:`dashboard.url_state.ViewState` fields) the page reads from the URL
            besides ``run``; its links carry them.
        share: one line on what a link to the page shows (the Share page).
        default: whether it is the page at the root of the site.
        runs_models: whether the page runs models (attribution maps, the prior's text encoder), so that
            opening it may import torch; a page that only reads stored numbers must not (a test checks). The
            Hypotheses page is one, except where a discovered concept is named: it then shows z* re-solved in names
            given since the run (:attr:`dashboard.run_view.RunView.renamed`) and, for a clause about a discovered
            concept, the maps of its exemplars.
        partial: whether the page is offered while the first launch's demo run is still computing its last
            stages (:mod:`dashboard.first_launch`): it reads only stored numbers and writes nothing, so it can
            show a run in progress, each section that lacks a stage saying so.
    """

    name: str
    title: str
    icon: str
    url_path: str
    keys: tuple[str, ...] = ()
    share: str = ""
    default: bool = False
    runs_models: bool = False
    partial: bool = False

    @property
    def file(self) -> Path:
        return APP_PAGES / f"{self.name}.py"

    @property
    def path(self) -> str:
        """The URL path a link uses: empty for the default page (``/overview`` is "Page not found")."""
        return "" if self.default else self.url_path


#: Every page, in sidebar order.
PAGES: tuple[PageSpec, ...] = (
    PageSpec("overview", "Overview", ":material/insights:", "overview", (),
             "what IG and the baseline learned, and how every method does on D′", default=True, partial=True),
    PageSpec("hypotheses", "Hypotheses", ":material/lightbulb:", "hypotheses", ("hyp",),
             "the selected hypothesis as a field guide", partial=True),
    PageSpec("microscope", "Baseline microscope", ":material/biotech:", "microscope", ("model", "method", "group", "correct", "img", "tcav", "layer"),
             "the model, attribution method, gallery filters and inspected image, and TCAV's model and layer", runs_models=True),
    PageSpec("compare", "Compare", ":material/compare:", "compare", ("method", "cls"),
             "z* next to z_baseline, with the class of the weights against TCAV and the attribution method of the maps",
             runs_models=True),
    PageSpec("prior", "Prior", ":material/tune:", "prior", (), "the judgments behind the prior and z* re-solved on them",
             runs_models=True),
    PageSpec("discover", "Discover", ":material/explore:", "discover", ("comp",),
             "the concepts found in the models that nobody annotated, the one selected, and the names people gave them",
             runs_models=True),
    PageSpec("label", "Label with z*", ":material/how_to_vote:", "label", (), "labelling D′ images with z*'s field guide"),
    PageSpec("share", "Share & export", ":material/share:", "share", (), "this page: links and the report"),
)


def page_named(name: str) -> PageSpec:
    """The registry entry of page ``name`` (KeyError for an unknown page)."""
    for spec in PAGES:
        if spec.name == name:
            return spec
    raise KeyError(name)
