"""``study serve``: both dashboards under Voilà, bound to 127.0.0.1 with a token (authentication
on by default); what a dashboard needs (saved models, the application database) is prepared
first when missing. Settings live in ``dashboards/voila.json`` (execution timeout, kernel
culling, upload size, no tracebacks)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from study import paths


def prepare(scale: str = "default", seed: int = 2017, raw: str | None = None, log=print) -> None:
    """Serve the study's models: train or export only what is missing (once; later runs reuse it)."""
    prepare_doors(scale, seed, log)
    prepare_churn(paths.MODELS, scale, seed, raw, log)


def prepare_doors(scale: str = "default", seed: int = 2017, log=print) -> None:
    doors = paths.DOOR_MODELS
    if not all((doors / part / "model.json").is_file() for part in ("detector", "transfer", "original_cnn")):
        from study.doors.train import train_all

        log(
            f"preparing: training the door models at scale {scale} into {doors} (notebook 50 saves them when the study runs)"
        )
        train_all("quick" if scale in ("tiny", "quick") else scale, out=doors, seed=seed, echo=log)


def prepare_churn(
    models_dir: Path, scale: str = "default", seed: int = 2017, raw: str | None = None, log=print
) -> None:
    """The churn models notebook 30 saved and the database notebook 40 exported are served as they
    are; a missing one is made by the same functions (:mod:`study.churn.served`,
    ``database.export_application``). A database and models from different data are reported."""
    from study.churn import database, lineage, served

    need_models = served.missing(models_dir)
    url = database.app_url()
    db_file = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
    need_db = db_file is not None and not db_file.is_file()
    if need_models or need_db:
        from study.churn.data import resolve_source

        src = resolve_source(raw, scale=scale, seed=seed)
        if need_models:
            log(f"preparing: the study has not saved {' and '.join(need_models)} in {models_dir}")
            served.train(src, need_models, models_dir, report=lineage.NO_REPORT, log=log)
        if need_db:
            log(f"preparing: exporting the application database to {database.redact(url)}")
            database.export_application(src, url)
    try:
        cards = {n: json.loads((models_dir / n / "card.json").read_text()) for n in served.NAMES}
        for sentence in lineage.mismatches(database.read_meta(url), cards):
            log("warning: " + sentence)
    except Exception as exc:  # noqa: BLE001 - the dashboard says the same in its About tab
        log(f"warning: could not compare the models' and the database's data: {exc}")


def command(port: int, preheat: bool = False) -> list[str]:
    """The Voilà command line; the token is not on it (``ps`` shows command lines): it travels in
    the child's environment (JUPYTER_TOKEN) and, after the first visit, lives in the HttpOnly
    login cookie."""
    cmd = [
        sys.executable,
        "-m",
        "study.voila_app",
        str(paths.DASHBOARDS),
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
        "--Voila.auto_token=True",
        "--VoilaConfiguration.show_tracebacks=False",
    ]
    if preheat:
        cmd += ["--preheat_kernel=True", "--pool_size=1"]
    return cmd


def stop(proc: subprocess.Popen, grace: float = 15.0) -> int:
    """End the Voilà process group: SIGTERM (Voilà shuts its kernels down), SIGKILL after ``grace``."""
    if proc.poll() is not None:
        return proc.returncode
    _signal_group(proc, signal.SIGTERM)
    try:
        return proc.wait(grace)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        return proc.wait()


def serve(
    port: int = 8866,
    token: str | None = None,
    preheat: bool = False,
    scale: str = "default",
    seed: int = 2017,
    raw: str | None = None,
    no_prepare: bool = False,
    token_file: str | None = None,
    max_kernels: int = 8,
) -> int:
    if not no_prepare:
        prepare(scale, seed, raw)
    if token_file:
        token = Path(token_file).read_text().strip()
    token = token or os.environ.get("STUDY_TOKEN")
    where = "the token you gave"
    if not token:
        token = secrets.token_urlsafe(24)
        where = f"the token in {write_token(token)} (readable by you only)"
    # dashboards/jupyter holds the offline Voilà template named in voila.json
    jp = os.pathsep.join(p for p in (str(paths.DASHBOARDS / "jupyter"), os.environ.get("JUPYTER_PATH", "")) if p)
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "JUPYTER_PATH": jp,
        "JUPYTER_TOKEN": token,
        "STUDY_MAX_KERNELS": str(max_kernels),
    }
    env.pop("STUDY_TOKEN", None)
    # Voilà runs in its own process group so that a SIGTERM or SIGINT sent to `study serve` (kill, a
    # service manager, a container stop, Ctrl-C) ends it and its kernels instead of orphaning them.
    proc = subprocess.Popen(command(port, preheat), cwd=paths.DASHBOARDS, env=env, start_new_session=True)

    stopping: dict = {}

    def forward(signum, _frame):  # only signals here: waiting inside a handler could deadlock Popen.wait
        stopping.setdefault("at", time.monotonic())
        stopping["signal"] = signum
        _signal_group(proc, signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    print(
        f"dashboards: http://127.0.0.1:{port}/voila/render/churn_scoring.ipynb?token=TOKEN\n"
        f"            http://127.0.0.1:{port}/voila/render/door_demo.ipynb?token=TOKEN\n"
        f"  TOKEN is {where}; after the first visit it lives in the browser's HttpOnly cookie.",
        flush=True,
    )
    try:
        while proc.poll() is None:
            if "at" in stopping and time.monotonic() - stopping["at"] > 15:
                _signal_group(proc, signal.SIGKILL)
            time.sleep(0.2)
    finally:
        stop(proc)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 + stopping["signal"] if stopping else proc.returncode


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def write_token(token: str) -> Path:
    """The generated token in a file only its owner can read (not in the log, not on a command line)."""
    path = paths.SERVE_TOKEN
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return path
