"""`queuectl dashboard`: serve the web UI, JSON API and /metrics."""

from __future__ import annotations

import os
import signal
import sys
from argparse import Namespace
from pathlib import Path

from queuectl.cli.jobs import db_url
from queuectl.errors import InvalidInput, QueueError
from queuectl.web import is_loopback, tokens

MAX_BODY = 1024 * 1024           # as queuectl.web.app.MAX_BODY


def _no_token_argument(args: Namespace) -> None:
    if args.token is not None:
        raise InvalidInput("--token is refused: every user can read it in `ps`. Put the "
                           "token in a file only you can read (--token-file FILE) or in "
                           "QUEUECTL_DASHBOARD_TOKEN, or let the dashboard make one in "
                           f"{tokens.default_path()}")


def _token(args: Namespace) -> tuple[str, str]:
    """The token, and where it came from."""
    _no_token_argument(args)
    if args.token_file:
        path = Path(args.token_file)
        return tokens.read(path), f"from {path}"
    env = os.environ.get("QUEUECTL_DASHBOARD_TOKEN")
    if env:
        return tokens.check(env, "QUEUECTL_DASHBOARD_TOKEN"), "from QUEUECTL_DASHBOARD_TOKEN"
    path = tokens.default_path()
    return tokens.load_or_create(path), f"in {path}"


def _address(text: str) -> str:
    import ipaddress
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise InvalidInput(f"--trusted-proxy takes the proxy's IP address, not {text!r}")\
            from None


def dashboard(args: Namespace) -> int:
    if args.port > 65535:
        raise InvalidInput(f"--port must be from 0 to 65535, not {args.port}")
    if not args.host.strip():
        raise InvalidInput("--host must be an address or a host name, not empty "
                           "(0.0.0.0 means every interface)")
    _no_token_argument(args)
    proxies = [_address(a) for a in args.trusted_proxy or []]
    try:
        import waitress

        from queuectl.web.app import create_app
    except ImportError as e:
        raise QueueError(f"the dashboard is not installed ({e.name} is missing): "
                         "pip install 'flask>=3.0' 'flask-wtf>=1.2' 'waitress>=3.0' "
                         "'prometheus-client>=0.20'") from None
    token, source = _token(args)
    loopback = is_loopback(args.host)
    url = db_url(args)
    from queuectl.store import open_store
    with open_store(url, create=True):           # errors now, not on the first page
        pass
    app = create_app(url, token=token, token_source=source, read_only=args.read_only,
                     loopback=loopback, trusted_proxies=proxies)
    try:
        # (waitress refuses bodies over the limit itself, before reading them.)
        server = waitress.create_server(app, host=args.host, port=args.port, threads=8,
                                        ident="queuectl",
                                        max_request_body_size=MAX_BODY,
                                        clear_untrusted_proxy_headers=False)
    except OSError as e:
        raise QueueError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    except ValueError as e:              # waitress: a host name that does not resolve
        raise InvalidInput(f"cannot listen on {args.host}:{args.port}: {e}") from None
    host, port = server.effective_host, server.effective_port
    shown = f"[{host}]" if ":" in str(host) else host
    # Browsers send a host's cookies to every port: one cookie name per port.
    app.config["SESSION_COOKIE_NAME"] = f"queuectl_{port}"
    if str(host) in ("0.0.0.0", "::"):
        shown = "127.0.0.1"
    print(f"queuectl dashboard on http://{shown}:{port}/"
          f"{' (read-only)' if args.read_only else ''}; Ctrl+C stops it", flush=True)
    code = app.extensions["queuectl"].signin_code
    print(f"sign in (this link works once): http://{shown}:{port}/login?code={code}\n"
          f"token: {source} (scripts: Authorization: Bearer <token>)", file=sys.stderr,
          flush=True)
    if not loopback and not proxies:
        print("warning: served over plain HTTP beyond this machine; put a TLS reverse "
              "proxy in front (--trusted-proxy ADDR)", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: server.close())
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    except OSError:
        if server.socket is not None and server.socket.fileno() != -1:
            raise
    finally:
        server.close()
    print("queuectl dashboard stopped", file=sys.stderr)
    return 0
