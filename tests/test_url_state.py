"""What a link or a network can do to the dashboard: the URL codec's checks, notes that cannot carry
Markdown, where the server listens (a real ``streamlit run`` started from ``dashboard/``), the refusal to
serve beyond loopback without ``IG_ALLOW_REMOTE=1``, and where runs live.

Notes are rendered with a CommonMark parser (markdown-it-py) to prove that no value from a link becomes a
link, an image or HTML: the value must stay inside one ``<code>`` element.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from dashboard import escape, exposure, runs, url_state
from testkit.browser import CHROMIUM, CHROMIUM_ARGS, start_streamlit, stop

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
TIMEOUT = 120
V = str(url_state.CODEC_VERSION)
INJECTION = "a\n\n[Sign in](https://ev.il)"


def render(note: str) -> str:
    """A note as the browser gets it (CommonMark, raw HTML off as in ``st.info``)."""
    return MarkdownIt("commonmark", {"html": False}).render(note)


def assert_inert(note: str) -> None:
    """The note renders to one paragraph with no link, image or HTML element beyond code and emphasis."""
    out = render(note)
    for tag in ("<a ", "<img", "<script", "<h1", "<h2", "<ul", "<ol", "<blockquote"):
        assert tag not in out, (note, out)
    assert out.count("<p>") == 1, (note, out)


# ------------------------------------------------------------------------------------------ codec
@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("run", INJECTION, "control character"),
        ("run", "tiny\r", "control character"),
        ("run", "../../etc/passwd", "not a valid run id"),
        ("run", "a" * 129, "not a valid run id"),
        ("run", "r" * 201, "at most 200"),
        ("hyp", "１２", "digits 0-9"),  # full-width digits: int() would read 12
        ("hyp", "٣", "digits 0-9"),  # Arabic-Indic three
        ("hyp", "1e3", "digits 0-9"),
        ("hyp", "-1", "digits 0-9"),
        ("img", "12345678", "digits 0-9"),
        ("model", "erm/../../etc", "without '/'"),
        ("model", "..", "without '/'"),
        ("model", "erm\x00", "control character"),
        ("model", "<script>alert(1)</script>", "names are letters"),
        ("method", "saliency\u202e", "control character"),  # right-to-left override
        ("method", "x" * 10_000, "at most 200"),
        ("group", "wolf/snow/../..", "class/background"),
        ("group", "/etc", "class/background"),
        ("group", "wolf\nsnow", "control character"),
        ("correct", "maybe", "must be one of all, correct, wrong"),
        ("comp", "erm/3", "discovered::<model>/<k>"),
        ("comp", "discovered::erm/../3", "discovered::<model>/<k>"),
        ("comp", "discovered::erm/3\n[x](https://ev.il)", "control character"),
        ("comp", "discovered::erm/" + "9" * 300, "at most 200"),
    ],
)
def test_codec_refuses_bad_values_with_an_inert_note(key: str, value: str, why: str) -> None:
    decoded = url_state.decode({"v": V, key: value})
    assert getattr(decoded.state, key) == getattr(url_state.ViewState(), key)
    # a refused run id goes to the router, which says which run it shows instead
    notes = [decoded.run_problem] if key == "run" else decoded.notes
    assert len(notes) == 1 and notes[0] and why in notes[0], decoded
    if key == "run":
        assert not decoded.notes
    note = notes[0]
    assert "\n" not in note and "\r" not in note and "\x00" not in note
    assert_inert(note)
    # the refused value appears only inside one code span
    out = render(note)
    assert out.count("<code>") == 1 and "ev.il" not in out.replace(out[out.index("<code>"):out.index("</code>")], "")


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"v": "２"}, "is not valid"),
        ({"v": "1\n"}, "is not valid"),
        ({"v": "99999"}, "is not valid"),
        ({"v": "3"}, "a newer version"),
        ({"v": "0"}, "an older version"),
        ({"v": "[x](https://ev.il)"}, "is not valid"),
        ({"hyp": "1"}, "no format version"),
    ],
)
def test_unknown_versions_give_the_default_view(params: dict[str, str], fragment: str) -> None:
    decoded = url_state.decode(params)
    assert decoded.state == url_state.ViewState()
    assert len(decoded.notes) == 1 and fragment in decoded.notes[0]
    assert_inert(decoded.notes[0])


def test_good_values_round_trip() -> None:
    state = url_state.ViewState(run="20260101-snowwolf_rho0.99-s0.a1", hyp=3, img=1499, model="ig_student",
                            method="integrated_gradients", group="red fox/forest floor", correct="wrong", comp="discovered::erm/3",
                            tcav="ig_student", layer="backbone.encoder.layer." + "3" * 150 + ".1", cls="Black-footed Albatross (juvenile)")
    decoded = url_state.decode(url_state.encode(state))
    assert decoded.state == state and decoded.notes == []


@pytest.mark.parametrize(("key", "value"), [("cls", "wolf\n"), ("cls", " "), ("cls", "x" * 201), ("layer", "../layer4"), ("layer", "layer4..1"), ("layer", "layer 4"), ("tcav", "erm/x")])
def test_bad_view_choices_fall_back_with_a_note(key: str, value: str) -> None:
    """A class is a folder's name (any printable text, checked against the run's classes by the page); a TCAV model
    or layer is a plain name."""
    decoded = url_state.decode({"v": V, key: value})
    assert getattr(decoded.state, key) is None
    assert len(decoded.notes) == 1 and "could not be read" in decoded.notes[0]
    assert_inert(decoded.notes[0])


def test_unknown_keys_and_huge_unknown_values_are_ignored() -> None:
    decoded = url_state.decode({"v": V, "embed": "x" * 10_000, "utm_source": "\n\n[a](b)", "hyp": "2"})
    assert decoded.state.hyp == 2 and decoded.notes == []


def test_version_1_links_keep_showing_what_they_showed() -> None:
    """v=1 counted hypotheses from 0; v=2 counts from 1, as the pages do. An old link is read as it was meant."""
    assert url_state.decode({"v": "1", "hyp": "0"}).state.hyp == 1
    assert url_state.decode({"v": "1", "hyp": "4", "img": "7"}).state == url_state.ViewState(hyp=5, img=7)
    assert url_state.decode({"v": "1", "run": "r"}).state == url_state.ViewState(run="r")  # no hypothesis: z*
    assert url_state.decode({"v": V, "hyp": "0"}).notes  # from v=2 on, there is no hypothesis #0


def test_choose_quotes_values_inertly() -> None:
    notes: list[str] = []
    assert url_state.choose("x`\n\n[a](https://ev.il)", ["erm"], "erm", "model", notes) == "erm"
    assert len(notes) == 1
    assert_inert(notes[0])


# ------------------------------------------------------------------------------------------ safe text
@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("plain", "`plain`"),
        ("a`b", "`a'b`"),
        ("a\nb", "`a\\nb`"),
        ("x\u202ey", "`x\\u202ey`"),
        ("", "` `"),
        ("y" * 50, "`" + "y" * 39 + "…`"),
    ],
)
def test_code_text(value: str, shown: str) -> None:
    assert escape.code_text(value) == shown


def test_html_helpers() -> None:
    assert escape.html_text("<b onclick='x'>&") == "&lt;b onclick=&#x27;x&#x27;&gt;&amp;"
    assert escape.css_color("#2e7d5b") == "#2e7d5b"
    assert escape.css_color("red;background:url(https://ev.il)") == "#888888"
    assert escape.css_color(None, "#000000") == "#000000"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("", False), ("10.1.2.3", False), ("no-such-host.invalid", False)],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert exposure.is_loopback(host) is loopback


def test_runs_root_is_the_project_s_not_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IG_RUNS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert runs.runs_root() == ROOT / "runs"
    monkeypatch.setenv("IG_RUNS_DIR", "elsewhere")
    assert runs.runs_root() == tmp_path / "elsewhere"
    monkeypatch.setenv("IG_RUNS_DIR", str(tmp_path / "abs"))
    assert runs.runs_root() == tmp_path / "abs"


# ------------------------------------------------------------------------------------------ AppTest
def open_app(params: dict[str, str], page: str = "overview") -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(params)
    if page != "overview":
        at.switch_page(f"app_pages/{page}.py")
    return at.run()


def test_markdown_injection_through_the_run_id_is_inert(runs_dir: Path) -> None:
    at = open_app({"v": V, "run": INJECTION})
    assert not at.exception
    notes = [str(i.value) for i in at.info if "not a valid run id" in str(i.value)]
    assert len(notes) == 1, [str(i.value) for i in at.info]
    assert_inert(notes[0])
    assert at.query_params["run"] == "tiny"  # the newest complete run, and the bad value left the URL


@pytest.mark.parametrize(
    ("params", "page"),
    [
        ({"v": V, "model": "erm/../../etc"}, "microscope"),
        ({"v": V, "hyp": "１２"}, "hypotheses"),
        ({"v": V, "group": "x" * 10_000}, "microscope"),
        ({"v": V, "comp": "discovered::../../etc"}, "discover"),
    ],
)
def test_bad_values_fall_back_on_the_page(runs_dir: Path, params: dict[str, str], page: str) -> None:
    at = open_app(params, page)
    assert not at.exception
    notes = [str(i.value) for i in at.info if "could not be read" in str(i.value)]
    assert len(notes) == 1
    assert_inert(notes[0])
    key = next(k for k in params if k != "v")
    assert at.query_params.get(key) != params[key]


@pytest.fixture
def listening_everywhere() -> Iterator[int]:
    """This process listens on every interface, as a server started with ``--server.address 0.0.0.0``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_no_content_beyond_loopback_without_the_opt_in(runs_dir: Path, listening_everywhere: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(exposure.REMOTE_ENV, raising=False)
    assert f"0.0.0.0:{listening_everywhere}" in exposure.exposed_addresses()
    at = open_app({"v": V, "run": "tiny"}, "hypotheses")
    assert not at.exception
    assert len(at.error) == 1 and "not served here" in str(at.error[0].value) and exposure.REMOTE_ENV in str(at.error[0].value)
    assert not at.title and not at.sidebar.markdown and not at.metric  # nothing of the run is shown


@pytest.mark.parametrize("page", ["overview", "prior"])
def test_opt_in_serves_with_a_warning_on_every_page(runs_dir: Path, listening_everywhere: int, monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    monkeypatch.setenv(exposure.REMOTE_ENV, "1")
    at = open_app({"v": V, "run": "tiny"}, page)
    assert not at.exception and not at.error
    assert any("No login" in str(w.value) for w in at.warning)
    assert at.title


def test_loopback_serves_without_a_warning(runs_dir: Path) -> None:
    at = open_app({"v": V, "run": "tiny"})
    assert exposure.exposed_addresses() == []
    assert not at.exception and at.title
    assert not any("No login" in str(w.value) for w in at.warning)


# ------------------------------------------------------------------------------------------ real server
def test_server_config_next_to_the_script() -> None:
    """Loopback, no error details for visitors (not even the type: "false" would still show tracebacks),
    XSRF protection on."""
    import tomllib

    config = tomllib.loads((ROOT / "dashboard" / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["server"]["enableXsrfProtection"] is True
    assert config["client"]["showErrorDetails"] == "none"
    assert not (ROOT / ".streamlit" / "config.toml").exists(), "one config, read from any working directory"


def test_started_from_the_dashboard_folder_it_listens_on_loopback_only(tmp_path: Path) -> None:
    """``cd dashboard && streamlit run app.py``: the config next to the script binds it to 127.0.0.1."""
    proc, _url, port = start_streamlit(tmp_path / "runs", tmp_path / "log", args=["app.py"], cwd=ROOT / "dashboard")
    try:
        listening = exposure.listening_addresses(proc.pid)
        assert (("127.0.0.1", port) in listening), listening
        assert all(exposure.is_loopback(ip) for ip, _ in listening), listening
        assert exposure.exposed_addresses(proc.pid) == []
    finally:
        stop(proc)
    assert not (ROOT / "dashboard" / "runs").exists()


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Debian chromium is not installed at {CHROMIUM} (apt-get install -y chromium)")
def test_listening_everywhere_without_the_opt_in_serves_no_content(tmp_path: Path) -> None:
    """``--server.address 0.0.0.0``: the server is up, but the page is the refusal and nothing else."""
    from playwright.sync_api import sync_playwright

    proc, _url, port = start_streamlit(tmp_path / "runs", tmp_path / "log", args=[str(APP), "--server.address", "0.0.0.0"])
    try:
        assert f"0.0.0.0:{port}" in exposure.exposed_addresses(proc.pid)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/hypotheses?v={V}&hyp=2", timeout=60_000)
            page.wait_for_selector("text=This dashboard is not served here", timeout=60_000)
            body = page.inner_text("body")
            browser.close()
        assert exposure.REMOTE_ENV in body
        assert "Hypotheses" not in body and "IG Microscope" not in body and "Computing the demo run" not in body
    finally:
        stop(proc)
    assert not (tmp_path / "runs").exists()  # no demo run was started
    assert "refusing to serve" in (tmp_path / "log").read_text()


def test_psutil_sees_this_process(listening_everywhere: int) -> None:
    assert ("0.0.0.0", listening_everywhere) in exposure.listening_addresses(psutil.Process().pid)
