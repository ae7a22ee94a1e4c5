"""Running the workspace under uvicorn: alone (`intake web`) or in a thread beside the
scheduler (`intake run` with `[web] enabled = true`)."""

from __future__ import annotations

import signal
import threading
from types import TracebackType

import uvicorn

from config.errors import ConfigError
from service.bootstrap import App
from service.web.app import create_app

STARTUP_TIMEOUT = 30.0


def _config(app: App) -> uvicorn.Config:
    web = app.settings.web
    return uvicorn.Config(
        create_app(app),
        host=web.host,
        port=web.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",  # a reverse proxy on the same host
        server_header=False,
    )


def serve_forever(app: App, *, stop: threading.Event | None = None) -> int:
    """Serve until SIGTERM / SIGINT (or `stop` is set); 0 after a clean stop."""
    stop = stop or threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {
            number: signal.signal(number, lambda _number, _frame: stop.set())
            for number in (signal.SIGTERM, signal.SIGINT)
        }
    try:
        with WorkspaceServer(app) as server:
            app.log(f"event=workspace_listening url={server.url}")
            stop.wait()
            app.log("event=workspace_stopping")
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        app.engine.dispose()
    return 0


class WorkspaceServer:
    """The workspace in a background thread: started on enter, stopped cleanly on exit."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.server = uvicorn.Server(_config(app))
        self.thread = threading.Thread(target=self.server.run, name="intake-web", daemon=True)

    @property
    def url(self) -> str:
        """Where it listens (the real port when 0 was configured)."""
        servers = getattr(self.server, "servers", [])
        port = self.app.settings.web.port
        if servers and servers[0].sockets:
            port = servers[0].sockets[0].getsockname()[1]
        return f"http://{self.app.settings.web.host}:{port}/"

    def __enter__(self) -> WorkspaceServer:
        self.thread.start()
        stopped = threading.Event()
        waited = 0.0
        while not self.server.started and self.thread.is_alive() and waited < STARTUP_TIMEOUT:
            stopped.wait(0.05)
            waited += 0.05
        if not self.server.started:
            self.server.should_exit = True
            self.thread.join(timeout=5)
            where = f"{self.app.settings.web.host}:{self.app.settings.web.port}"
            raise ConfigError(f"the workspace cannot listen on {where}", key="web.port")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
