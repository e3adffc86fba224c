"""Write nginx's configuration for Callsite's workers (``manage.py serve``).

Every request and WebSocket goes to any worker (round robin, no stickiness): the workers share
their state through PostgreSQL and Redis. nginx serves ``/static/`` from ``STATIC_ROOT``
(after ``collectstatic``), passes WebSocket upgrades on with a day's read timeout, and when a
worker refuses connections (it is restarting) or answers 503 (it is over capacity) sends the
request or socket to the next one.

By default the output is a site file for ``/etc/nginx/sites-enabled/``; ``--standalone``
wraps it in a whole ``nginx.conf`` with its pid and logs under ``--prefix``, which is how the
tests run nginx as an unprivileged process.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

SITE = """\
# Callsite: {workers} worker(s) on {host}, ports {ports} (manage.py serve)
upstream callsite_workers {{
{servers}
    keepalive 16;
}}

# ACS passes its shared secret as ?token= on /ws/acs/: log paths without their query strings.
log_format callsite_no_query '$remote_addr - $remote_user [$time_local] '
                             '"$request_method $uri $server_protocol" $status $body_bytes_sent '
                             '"$http_user_agent" $request_time';

map $http_upgrade $callsite_connection {{
    default upgrade;
    ''      '';
}}

server {{
    listen {listen};
    server_name {server_name};
    client_max_body_size {max_body};
    access_log {access_log} callsite_no_query;

    # collectstatic's hashed names (app.3f9c1e2a7b4d.css) never change: cached for a year,
    # never revalidated; other static files for an hour. The .gz copies collectstatic wrote
    # are sent to browsers that accept gzip (gzip_static), without compressing per request.
    location ~ "^{static_url}(?<static_file>.+\\.[0-9a-f]{{12}}\\.[A-Za-z0-9]+)$" {{
        alias {static_root}/$static_file;
        gzip_static on;
        expires 1y;
        add_header Cache-Control "public, immutable" always;
        access_log off;
    }}

    location {static_url} {{
        alias {static_root}/;
        gzip_static on;
        expires 1h;
        access_log off;
    }}

    location / {{
        proxy_pass http://callsite_workers;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $callsite_connection;
        proxy_set_header Host $host;
        # Set, not appended to what the client sent: Daphne takes the first entry as the
        # client's address (logs, the login limits), which a client must not choose. Behind
        # another proxy, recover the client's address with nginx's real-ip module first.
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_buffering off;
        # Calls and supervisors' pages stay open for hours, quiet at times.
        proxy_read_timeout 1d;
        proxy_send_timeout 1d;
        # A worker that refuses the connection (restarting) or answers 503 (over capacity:
        # callsite/load.py) is skipped for the next one, and rested for 10 s (max_fails 1).
        proxy_next_upstream error timeout http_503;
        proxy_connect_timeout 2s;
    }}
}}
"""

STANDALONE = """\
# Callsite: a whole nginx.conf, for: nginx -p {prefix} -c {prefix}/nginx.conf
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
daemon off;

events {{
    worker_connections 4096;
}}

http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    types {{
        text/css css;
        application/javascript js;
        image/svg+xml svg;
        image/png png;
    }}
    default_type application/octet-stream;

{site}
}}
"""


def render(
    *,
    host: str,
    ports: Sequence[int],
    listen: str,
    server_name: str,
    static_root: Path,
    static_url: str,
    max_body: str = "10m",
    standalone_prefix: Path | None = None,
    access_log: str = "/var/log/nginx/callsite.access.log",
) -> str:
    """nginx's configuration for workers on ``host``, one per port of ``ports``."""
    servers = "\n".join(f"    server {host}:{port} max_fails=1 fail_timeout=2s;" for port in ports)
    site = SITE.format(
        workers=len(ports),
        host=host,
        ports=", ".join(str(port) for port in ports),
        servers=servers,
        listen=listen,
        server_name=server_name,
        max_body=max_body,
        access_log=(
            f"{standalone_prefix}/access.log" if standalone_prefix is not None else access_log
        ),
        static_url="/" + static_url.strip("/") + "/",
        static_root=str(static_root).rstrip("/"),
    )
    if standalone_prefix is None:
        return site
    indented = "\n".join(f"    {line}" if line else "" for line in site.splitlines())
    return STANDALONE.format(prefix=standalone_prefix, site=indented)


class Command(BaseCommand):
    help = "Print nginx's configuration for the workers that `manage.py serve` starts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workers", type=int, required=True, help="as given to serve")
        parser.add_argument("--host", default="127.0.0.1", help="the workers' address")
        parser.add_argument("--port", type=int, default=8001, help="the first worker's port")
        parser.add_argument("--listen", default="80", help="nginx's listen (default: 80)")
        parser.add_argument("--server-name", default="_", help="nginx's server_name")
        parser.add_argument(
            "--standalone",
            type=Path,
            metavar="PREFIX",
            help="write a whole nginx.conf keeping its pid, logs and temp files in PREFIX",
        )

    def handle(self, *args: Any, **options: Any) -> str:
        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1")
        prefix = options["standalone"]
        first = options["port"]
        return render(
            host=options["host"],
            ports=range(first, first + options["workers"]),
            listen=options["listen"],
            server_name=options["server_name"],
            static_root=Path(settings.STATIC_ROOT),
            static_url=settings.STATIC_URL,
            standalone_prefix=prefix.resolve() if prefix is not None else None,
        )
