"""``study serve``: both dashboards under Voilà, bound to 127.0.0.1 with a token (authentication
on by default); what a dashboard needs (saved models, the application database) is prepared
first when missing. Settings live in ``dashboards/voila.json`` (execution timeout, kernel
culling, upload size, no tracebacks)."""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from study import paths

DASHBOARDS = paths.ROOT / "dashboards"


def prepare(scale: str = "default", seed: int = 2017, raw: str | None = None, log=print) -> None:
    """Train the models and export the database if they are absent (once; later runs reuse them)."""
    from study.churn import database, scoring

    from study.doors.pipeline import models_folder

    doors = models_folder()
    if not all((doors / part / "model.json").is_file() for part in ("detector", "transfer", "original_cnn")):
        from study.doors.train import train_all

        log(f"preparing: training the door models at scale {scale} into {doors}")
        train_all("quick" if scale in ("tiny", "quick") else scale, out=doors, seed=seed, echo=log)
    need_models = [m for m in ("original", "champion") if not (scoring.MODELS / m / "manifest.json").is_file()]
    url = database.app_url()
    db_file = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
    need_db = db_file is not None and not db_file.is_file()
    if not (need_models or need_db):
        return
    from study.churn import champion, features
    from study.churn.data import resolve_source

    src = resolve_source(raw, scale=scale, seed=seed)
    if "original" in need_models:
        log(f"preparing: training the original-format model on {src.describe()}")
        scoring.train_original(src)
    if "champion" in need_models:
        log(f"preparing: training the champion on {src.describe()}")
        months = list(database.PIT_MONTHS)
        champion.train_champion(features.point_in_time(src, months=months), months, None, src.describe())
    if need_db:
        log(f"preparing: exporting the application database to {database.redact(url)}")
        database.export_application(src, url)


def command(port: int, token: str, preheat: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "voila", str(DASHBOARDS), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
           f"--token={token}", "--VoilaConfiguration.show_tracebacks=False"]
    if preheat:
        cmd += ["--preheat_kernel=True", "--pool_size=1"]
    return cmd


def serve(port: int = 8866, token: str | None = None, preheat: bool = False, scale: str = "default",
          seed: int = 2017, raw: str | None = None, no_prepare: bool = False) -> int:
    if not no_prepare:
        prepare(scale, seed, raw)
    token = token or os.environ.get("STUDY_TOKEN") or secrets.token_urlsafe(24)
    # dashboards/jupyter holds the offline Voilà template named in voila.json
    jp = os.pathsep.join(p for p in (str(DASHBOARDS / "jupyter"), os.environ.get("JUPYTER_PATH", "")) if p)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "JUPYTER_PATH": jp}
    proc = subprocess.Popen(command(port, token, preheat), cwd=DASHBOARDS, env=env)
    print(f"dashboards: http://127.0.0.1:{port}/voila/render/churn_scoring.ipynb?token={token}\n"
          f"            http://127.0.0.1:{port}/voila/render/door_demo.ipynb?token={token}", flush=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        return proc.wait()
