"""Where the dashboard listens, and whether it may.

The dashboard has no login, so it serves only on loopback. Streamlit reads its config from the working
directory and from the folder of the main script (``dashboard/.streamlit``); a start from elsewhere or a
``--server.address 0.0.0.0`` flag can still put it on every interface. So the app looks at the sockets its
own process listens on (:func:`exposed_addresses`, ground truth whatever the config said) and, when one is
reachable from other machines, refuses to serve unless the person running it set ``IG_ALLOW_REMOTE=1``
(:func:`remote_allowed`); then every page carries a warning.
"""

from __future__ import annotations

import ipaddress
import os
import socket

import psutil

from dashboard.escape import code_text

REMOTE_ENV = "IG_ALLOW_REMOTE"


def remote_allowed() -> bool:
    """Whether the person running the server opted in to serving beyond loopback (``IG_ALLOW_REMOTE=1``)."""
    return os.environ.get(REMOTE_ENV, "").strip() == "1"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) only ever means this machine.

    An empty host, ``0.0.0.0`` and ``::`` mean every interface. A name counts as loopback only when every
    address it resolves to is loopback (``localhost``); one that cannot be resolved does not.
    """
    host = host.strip().strip("[]")
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


def listening_addresses(pid: int | None = None) -> list[tuple[str, int]]:
    """``(address, port)`` of every TCP socket process ``pid`` (default: this one) listens on."""
    conns = psutil.Process(pid).net_connections(kind="inet")
    return sorted({(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN and c.laddr})


def exposed_addresses(pid: int | None = None) -> list[str]:
    """``host:port`` of the listening sockets that other machines can reach (empty: loopback only).

    In-process test harnesses (Streamlit's AppTest) listen on nothing, so they are never exposed.
    """
    return [f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}" for ip, port in listening_addresses(pid) if not is_loopback(ip)]


def refusal(addresses: list[str]) -> str:
    """What a visitor reads when the server listens beyond loopback without the opt-in."""
    return (
        f"**This dashboard is not served here.** It listens on {', '.join(code_text(a) for a in addresses)}, "
        "which other machines can reach, and it has no login: anyone who can reach it could read every run "
        "and change the ratings. Whoever started it can restart it on this machine only with "
        "`streamlit run dashboard/app.py --server.address 127.0.0.1` (what `start.sh` does), or set "
        f"`{REMOTE_ENV}=1` to serve it to the network knowingly."
    )


def remote_warning(addresses: list[str]) -> str:
    """The banner on every page when serving beyond loopback was opted in to."""
    return (
        f"**No login.** This dashboard is served to the network ({', '.join(code_text(a) for a in addresses)}, "
        f"`{REMOTE_ENV}=1`): everyone who can reach it sees every run and can add or reset ratings."
    )
