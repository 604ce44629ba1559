"""`queuectl dashboard`: serve the web UI, JSON API and /metrics."""

from __future__ import annotations

import os
import signal
import sys
from argparse import Namespace

from queuectl.errors import InvalidInput, QueueError
from queuectl.store import resolve_url
from queuectl.web import is_loopback


def dashboard(args: Namespace) -> int:
    if args.port > 65535:
        raise InvalidInput(f"--port must be from 0 to 65535, not {args.port}")
    if not args.host.strip():
        raise InvalidInput("--host must be an address or a host name, not empty "
                           "(0.0.0.0 means every interface)")
    token = args.token or os.environ.get("QUEUECTL_DASHBOARD_TOKEN") or None
    loopback = is_loopback(args.host)
    if not loopback and not token:
        raise InvalidInput(f"refusing to serve on {args.host} without a token: anyone who "
                           "can reach it could run jobs. Give --token (or "
                           "QUEUECTL_DASHBOARD_TOKEN), or bind 127.0.0.1")
    if token is not None and len(token) < 16:
        raise InvalidInput("the dashboard token must be at least 16 characters")
    try:
        import waitress

        from queuectl.web.app import create_app
    except ImportError as e:
        raise QueueError(f"the dashboard is not installed ({e.name} is missing): "
                         "pip install 'queuectl[dashboard]'") from None
    url = resolve_url(getattr(args, "db", None))
    from queuectl.store import open_store
    with open_store(url, create=True):           # errors now, not on the first page
        pass
    app = create_app(url, token=token, read_only=args.read_only, loopback=loopback)
    try:
        server = waitress.create_server(app, host=args.host, port=args.port, threads=8,
                                        ident="queuectl")
    except OSError as e:
        raise QueueError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    except ValueError as e:              # waitress: a host name that does not resolve
        raise InvalidInput(f"cannot listen on {args.host}:{args.port}: {e}") from None
    host, port = server.effective_host, server.effective_port
    shown = f"[{host}]" if ":" in str(host) else host
    print(f"queuectl dashboard on http://{shown}:{port}/"
          f"{' (read-only)' if args.read_only else ''}; Ctrl+C stops it", flush=True)
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
