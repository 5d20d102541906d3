"""Voilà as ``study serve`` runs it (``python -m study.voila_app``): the stock application with the
few changes a shared dashboard server needs.

* Access-log lines never show the token: requests are logged by jupyter_server's ``log_request``,
  which scrubs ``token``, ``_xsrf`` and the like from every URL (tornado's default logs them).
* ``DELETE /api/kernels/<id>`` is refused: a page's kernel ends when the page closes (the shutdown
  beacon, which carries the page's ``_xsrf``) or when it has been idle; no token holder can stop the
  kernel of someone else's page through the REST API.
* ``GET /logout`` clears the login cookie and answers a short page (the stock handler renders a
  template Voilà does not ship: a 500).
* The kernel websocket refuses a foreign ``Origin`` even when the token is in the URL.
"""
from __future__ import annotations

import logging
import re
from urllib.parse import urlparse

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.log import log_request
from jupyter_server.services.kernels.handlers import KernelHandler
from tornado import web
from voila.app import Voila


class NoDeleteKernelHandler(KernelHandler):
    """GET as before (the page asks for its kernel's model); DELETE refused."""

    @web.authenticated
    def delete(self, kernel_id):
        raise web.HTTPError(403, "kernels are shut down by their own page or when idle")


class LogoutHandler(JupyterHandler):
    def get(self):
        self.identity_provider.clear_login_cookie(self)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish("<!doctype html><title>Signed out</title><p>Signed out. Open the link with the token "
                    "to sign in again.</p>")


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
            if handler is KernelHandler:
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
