"""`snn serve`: a local web page to draw digits on and watch the network's spikes.

The web stack (Starlette and uvicorn) is the optional extra `serve`; this module imports
neither until the server starts, so `require_extra` can say in one line what to install.
`service.DigitReader` does the work, `app.create_app` is the web app around it.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
from collections.abc import Callable
from pathlib import Path

from ..errors import SnnError

EXTRA = 'pip install "snncli[serve]"'
MODULES = ("starlette", "uvicorn", "python_multipart")  # python-multipart: forms


def require_extra() -> None:
    """An SnnError naming what to install when the `serve` extra is missing."""
    for name in MODULES:
        try:
            __import__(name)
        except ImportError:
            raise SnnError(f"snn serve needs the web server extra ({name} is not installed): "
                           f"{EXTRA}") from None


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port), or an SnnError in one
    line (the port in use, a host that is not this machine's)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise SnnError(f"cannot listen on {host}: {getattr(exc, 'strerror', None) or exc}"
                       ) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        hint = "; choose another with --port" if exc.errno in (98, 48, 10048) else ""
        raise SnnError(f"cannot listen on {host} port {port}: {exc.strerror or exc}{hint}"
                       ) from None
    sock.set_inheritable(True)
    return sock


def is_loopback(sock: socket.socket) -> bool:
    """Whether the socket is reachable from this machine only."""
    try:
        return ipaddress.ip_address(sock.getsockname()[0]).is_loopback
    except ValueError:
        return False


def url_of(sock: socket.socket, host: str) -> str:
    """The page's address: the host as given (a wildcard address as 127.0.0.1), its port."""
    port = sock.getsockname()[1]
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(checkpoint: Path, why: str, host: str = "127.0.0.1", port: int = 8000,
          open_browser: bool = False, say: Callable[[str], None] = print,
          warn: Callable[[str], None] = print) -> None:
    """Run the web app for `checkpoint` until Ctrl-C or SIGTERM, then return normally: the
    port is taken first (so a port in use is one error before the model loads), then the
    model loaded, then the address said (and opened in a browser with `open_browser`)."""
    require_extra()
    sock = listen(host, port)
    # SIGTERM stops it as Ctrl-C does: uvicorn handles both while it serves, and raises the
    # signal again once it has stopped; before and after, they are a KeyboardInterrupt.
    stop = signal.signal(signal.SIGTERM, _interrupt) if _main_thread() else None
    try:
        _run(sock, checkpoint, why, host, open_browser, say, warn)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        if stop is not None:
            signal.signal(signal.SIGTERM, stop)
    say("stopped")


def _run(sock, checkpoint, why, host, open_browser, say, warn) -> None:
    import uvicorn

    from .app import create_app
    from .service import DigitReader

    reader = DigitReader(checkpoint, why)
    try:
        url = url_of(sock, host)
        for warning, line in announcement(sock, host, url, reader.info(), why or
                                          f"using {checkpoint}"):
            (warn if warning else say)(line)
        server = uvicorn.Server(uvicorn.Config(
            create_app(reader), log_level="warning", access_log=False,
            limit_concurrency=64, timeout_graceful_shutdown=5,
        ))
        if open_browser:
            import webbrowser

            webbrowser.open(url)
        server.run(sockets=[sock])
    finally:
        reader.close()


def announcement(sock: socket.socket, host: str, url: str, info: dict,
                 why: str) -> list[tuple[bool, str]]:
    """What `snn serve` says when it starts, as (is a warning, line): which checkpoint, the
    address, and who can reach it."""
    lines = [(False, why), (False, f"snn serve: {url}  ({info['model']}, {info['steps']} time "
                                     f"steps, {info['precision']}; Ctrl-C stops it)")]
    if is_loopback(sock):
        lines.append((False, f"listening on {sock.getsockname()[0]} only: this machine's "
                             "browsers can reach it, other machines cannot (--host to change)"))
    else:
        lines.append((True, f"listening on {host}: anyone who can reach this machine on port "
                            f"{sock.getsockname()[1]} can use the page and its API"))
    return lines


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
