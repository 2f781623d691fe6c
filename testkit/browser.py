"""What the browser tests and the dashboard benches share: Debian chromium and its flags, a real
``streamlit run`` server on a free loopback port, waiting for a Streamlit script run to end, and what no page may show (Playwright,
sync API)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
#: Flags for a headless chromium that reaches nothing but the test server.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
#: The script run is over: Streamlit marks the app root with its run state; no skeleton or spinner is left.
IDLE_JS = """() => {
  const app = document.querySelector('[data-testid=stApp]');
  return app && app.getAttribute('data-test-script-state') === 'notRunning'
    && !document.querySelector('[data-testid=stSkeleton], [data-testid=stSpinner]');
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: The dashboard's entry script.
APP = ROOT / "dashboard" / "app.py"


class Server(NamedTuple):
    """A running ``streamlit run``: its process, base URL and port."""

    process: subprocess.Popen
    url: str
    port: int


def server_env() -> dict[str, str]:
    """This process's environment without ``STREAMLIT_*`` settings and the opt-in to serve beyond loopback: what a
    dashboard server started for a test or a bench inherits."""
    return {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_") and k != "IG_ALLOW_REMOTE"}


def answers(url: str) -> bool:
    """The Streamlit server at ``url`` answers its health check."""
    try:
        return urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok"
    except OSError:
        return False


def start_streamlit(
    runs_dir: Path,
    log: Path | None = None,
    timeout_s: float = 90,
    *,
    args: Sequence[str] = (str(APP), "--server.address", "127.0.0.1"),
    cwd: Path = ROOT,
) -> Server:
    """``streamlit run <args>`` from ``cwd`` on a free port, reading ``runs_dir``, once its health check answers.

    The server does not inherit ``STREAMLIT_*`` settings or the opt-in to serve beyond loopback from this
    process's environment. Its output goes to ``log`` (None: discarded). Stop it with :func:`stop`.
    """
    port = free_port()
    env = server_env()
    env.update(IG_RUNS_DIR=str(runs_dir), BROWSER_PATH=CHROMIUM)
    cmd = [sys.executable, "-m", "streamlit", "run", *args, "--server.port", str(port), "--server.headless", "true"]
    out = log.open("w") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout_s
    while not answers(url):
        if time.time() > deadline or proc.poll() is not None:
            stop(proc)
            shown = f": {log.read_text()[-2000:]}" if log is not None else ""
            raise RuntimeError(f"streamlit did not start in {timeout_s:.0f} s{shown}")
        time.sleep(0.5)
    return Server(proc, url, port)


@contextmanager
def streamlit_server(runs_dir: Path, log_dir: Path, start_timeout_s: float = 90) -> Iterator[str]:
    """The dashboard served by :func:`start_streamlit`; yields its base URL and stops it afterwards. Its output
    goes to ``log_dir/streamlit.log``."""
    server = start_streamlit(runs_dir, log_dir / "streamlit.log", start_timeout_s)
    try:
        yield server.url
    finally:
        stop(server.process)


def stop(proc: subprocess.Popen, timeout_s: float = 15) -> None:
    """Ask a server process to end; kill it if it has not within ``timeout_s``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_idle(page: object, timeout: float = 90, settle_ms: int = 800) -> None:
    """Wait until the page's script run is over (no 'Running…', no skeletons), then ``settle_ms`` for charts."""
    page.wait_for_selector("[data-testid=stApp]", timeout=timeout * 1000)
    page.wait_for_selector("h1", timeout=timeout * 1000)
    page.wait_for_function(IDLE_JS, timeout=timeout * 1000)
    page.wait_for_timeout(settle_ms)


def assert_page_ok(page: object, name: str) -> None:
    """No Python exception, no "Page not found" dialog, no error box and no section missing from the run."""
    problems = {
        "exception": page.locator("[data-testid=stException]"),
        "page not found": page.get_by_text("Page not found"),
        "error box": page.locator("[data-testid=stAlertContentError]"),
        "section could not be drawn": page.get_by_text("could not be drawn"),
        "section missing from the run": page.get_by_text("This run has no"),
    }
    found = {what: loc.first.inner_text()[:300] for what, loc in problems.items() if loc.count()}
    assert not found, (name, found)
