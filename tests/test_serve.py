"""`study serve` as an operator runs it: stopped by SIGTERM it leaves no Voilà or kernel behind and
frees its port; the token is on no command line and in no log line; a token holder cannot delete
another page's kernel; logout works; the kernel websocket refuses a foreign Origin."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from conftest import _free_port

STUDY = str(Path(sys.executable).parent / "study")


@pytest.fixture()
def served(tmp_path):
    port, token = _free_port(), "tok-" + os.urandom(10).hex()
    env = {
        **os.environ,
        "STUDY_TOKEN": token,
        "STUDY_MODELS_DIR": str(tmp_path / "models"),
        "STUDY_DB_URL": f"sqlite:///{(tmp_path / 'app.sqlite').as_posix()}",
    }
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(
        [STUDY, "serve", "--no-prepare", "--port", str(port), "--max-kernels", "2"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{base}/?token={token}", timeout=2)
            break
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    yield {"proc": proc, "base": base, "token": token, "port": port, "log": tmp_path / "serve.log"}
    if proc.poll() is None:
        proc.terminate()  # forwarded to Voilà's process group (a SIGKILL would orphan it)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    log.close()


def _render(s) -> str:
    """Render the churn dashboard once (starts a kernel); returns its kernel id."""
    page = urllib.request.urlopen(
        f"{s['base']}/voila/render/churn_scoring.ipynb?token={s['token']}", timeout=120
    ).read()
    return re.search(rb'"kernelId": *"([0-9a-f-]+)"', page).group(1).decode()


def _status(method: str, url: str, headers=None) -> int:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        return urllib.request.urlopen(req, timeout=30).status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_sigterm_leaves_no_voila_no_kernel_and_a_free_port(served):
    _render(served)
    tree = psutil.Process(served["proc"].pid).children(recursive=True)
    assert any("study.voila_app" in " ".join(p.cmdline()) for p in tree)
    assert any("ipykernel" in " ".join(p.cmdline()) for p in tree), "the page started no kernel"
    served["proc"].send_signal(signal.SIGTERM)
    served["proc"].wait(30)
    _, alive = psutil.wait_procs(tree, timeout=20)
    assert not alive, [p.pid for p in alive]
    with socket.socket() as sock:  # nobody listens on the port any more (a new server could bind it)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", served["port"]))
        sock.listen()


def test_the_token_is_on_no_command_line_and_in_no_log_line(served):
    kid = _render(served)
    _status("DELETE", f"{served['base']}/api/kernels/{kid}?token={served['token']}")
    _status("GET", f"{served['base']}/no-such-page?token={served['token']}")
    for p in psutil.Process(served["proc"].pid).children(recursive=True) + [psutil.Process(served["proc"].pid)]:
        assert served["token"] not in " ".join(p.cmdline())
    served["proc"].send_signal(signal.SIGTERM)
    served["proc"].wait(30)
    text = served["log"].read_text()
    assert "403 DELETE" in text and "404 GET" in text  # the lines are there, scrubbed
    assert served["token"] not in text


def test_kernels_cannot_be_deleted_through_the_api_and_logout_works(served):
    kid = _render(served)
    assert _status("DELETE", f"{served['base']}/api/kernels/{kid}?token={served['token']}") == 403
    assert _status("GET", f"{served['base']}/api/kernels/{kid}?token={served['token']}") == 200  # still running
    assert _status("GET", f"{served['base']}/logout") == 200


def test_the_kernel_websocket_refuses_a_foreign_origin(served):
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    kid = _render(served)
    ws = served["base"].replace("http", "ws") + f"/api/kernels/{kid}/channels?token={served['token']}"

    async def connect(origin):
        try:
            conn = await websocket_connect(HTTPRequest(ws, headers={"Origin": origin}))
            conn.close()
            return 101
        except HTTPClientError as exc:
            return exc.code

    def status(origin):  # a loop of its own, in a thread: the session's Playwright driver owns this thread's
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, connect(origin)).result()

    assert status("http://evil.example") == 403
    assert status(served["base"]) == 101


def test_pages_beyond_the_kernel_cap_get_a_busy_page(served):
    _render(served)
    _render(served)
    req = urllib.request.Request(f"{served['base']}/voila/render/churn_scoring.ipynb?token={served['token']}")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=60)
    assert err.value.code == 503 and err.value.headers["Retry-After"] == "60"
    assert "busy" in err.value.read().decode()


def test_every_test_server_is_gone_afterwards():
    """The fixture above stops `study serve` the way an operator does: no Voilà is left behind."""
    time.sleep(2)
    leftovers = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if "study.voila_app" in " ".join(p.info["cmdline"] or []) and _orphan(p)
    ]
    assert not leftovers


def _orphan(p) -> bool:
    try:
        return p.ppid() == 1
    except psutil.Error:
        return False
