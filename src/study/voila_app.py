"""Voilà as ``study serve`` runs it (``python -m study.voila_app``): the stock application with the
few changes a shared dashboard server needs.

* Access-log lines never show the token: requests are logged by jupyter_server's ``log_request``,
  which scrubs ``token``, ``_xsrf`` and the like from every URL (tornado's default logs them).
* A page's kernel ends when the page closes: the render handler sets the ``_xsrf`` cookie that the
  page's shutdown beacon sends back (without it the beacon is refused, voila-dashboards/voila#1458).
* ``DELETE /api/kernels/<id>`` is refused: kernels end with their page or when idle; no token
  holder can stop the kernel of someone else's page through the REST API.
* ``GET /logout`` clears the login cookie and answers a short page (the stock handler renders a
  template Voilà does not ship: a 500).
* The kernel websocket refuses a foreign ``Origin`` even when the token is in the URL.
* At most ``STUDY_MAX_KERNELS`` kernels (default 8, about 300–600 MB each) run at once; one more
  page gets a "busy, try again in a minute" page (503) instead of exhausting the machine.
"""

from __future__ import annotations

import logging
import os
import re
from urllib.parse import urlparse

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.log import log_request
from jupyter_server.services.kernels.handlers import KernelHandler
from tornado import web
from voila.app import Voila
from voila.tornado.handler import TornadoVoilaHandler

BUSY_PAGE = (
    "<!doctype html><meta charset='utf-8'><title>Busy</title><h2>The dashboards are busy</h2>"
    "<p>Every place is taken by other open pages. Please try again in a minute.</p>"
)


def max_kernels() -> int:
    return max(1, int(os.environ.get("STUDY_MAX_KERNELS", "8")))


class CappedVoilaHandler(TornadoVoilaHandler):
    """Renders a dashboard (which starts its kernel) only while fewer than max_kernels() run."""

    @web.authenticated
    async def get(self, path=None):
        if len(self.kernel_manager.list_kernel_ids()) >= max_kernels():
            self.set_status(503)
            self.set_header("Retry-After", "60")
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(BUSY_PAGE)
            return
        # Voilà's page sends the _xsrf cookie back with its shutdown beacon when it closes, but the
        # render handler never sets that cookie: the beacon is refused and the kernel stays
        # (voila-dashboards/voila#1458). Reading the token sets the cookie.
        _ = self.xsrf_token
        await super().get(path)


class NoDeleteKernelHandler(KernelHandler):
    """GET as before (the page asks for its kernel's model); DELETE refused."""

    @web.authenticated
    def delete(self, kernel_id):
        raise web.HTTPError(403, "kernels are shut down by their own page or when idle")


class LogoutHandler(JupyterHandler):
    def get(self):
        self.identity_provider.clear_login_cookie(self)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(
            "<!doctype html><title>Signed out</title><p>Signed out. Open the link with the token to sign in again.</p>"
        )


def same_origin(origin: str | None, host: str | None) -> bool:
    """True when the websocket's Origin names this server (or no browser sent one)."""
    if not origin:
        return True
    return bool(host) and urlparse(origin).netloc.lower() == host.lower()


SECRET = re.compile(r"([?&](?:token|_xsrf|xsrf)=)[^&\s'\"]+")


class ScrubSecrets(logging.Filter):
    """Any log line (tornado's 4xx/5xx warnings included) shows ``token=[secret]``."""

    def filter(self, record):
        message = record.getMessage()
        if SECRET.search(message):
            record.msg, record.args = SECRET.sub(r"\1[secret]", message), None
        return True


def scrub_all_logs() -> None:
    if not logging.root.handlers:  # else tornado's warnings go to logging.lastResort, unfiltered
        fallback = logging.StreamHandler()
        fallback.setLevel(logging.WARNING)
        logging.root.addHandler(fallback)
    handlers = set(logging.root.handlers)
    for logger in logging.root.manager.loggerDict.values():
        handlers |= set(getattr(logger, "handlers", []))
    for handler in handlers:
        if not any(isinstance(f, ScrubSecrets) for f in handler.filters):
            handler.addFilter(ScrubSecrets())


class StudyVoila(Voila):
    def start(self):
        scrub_all_logs()
        super().start()

    def init_settings(self):
        settings = super().init_settings()
        settings["log_function"] = log_request
        return settings

    def init_handlers(self):
        handlers = []
        for spec in super().init_handlers():
            pattern, handler = spec[0], spec[1]
            if handler is TornadoVoilaHandler:
                spec = (pattern, CappedVoilaHandler, *spec[2:])
            elif handler is KernelHandler:
                spec = (pattern, NoDeleteKernelHandler, *spec[2:])
            elif pattern.endswith("/logout"):
                spec = (pattern, LogoutHandler, *spec[2:])
            elif pattern.endswith("/channels"):
                spec = (pattern, _checked_origin(handler), *spec[2:])
            handlers.append(spec)
        return handlers


def _checked_origin(handler_class):
    class OriginChecked(handler_class):
        def check_origin(self, origin=None):
            return same_origin(origin or self.request.headers.get("Origin"), self.request.headers.get("Host"))

    OriginChecked.__name__ = handler_class.__name__
    return OriginChecked


main = StudyVoila.launch_instance

if __name__ == "__main__":
    main()
