"""One entry point for every deployment shape: `python -m services --target all` on a laptop,
`--target ingest` / `--target stream,query,etl` / `--target live` as separate containers."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
from pathlib import Path

import uvicorn

from services.runtime import TARGETS, Runtime, build_app, parse_targets
from shared.settings import CommonSettings, ServerSettings

KEY_VARIABLES = ("ANALYTICS_INGEST_KEYS", "ANALYTICS_READ_KEYS", "ANALYTICS_ADMIN_KEYS")


def generated_keys(data_dir: Path) -> dict[str, str]:
    """Keys for a local run: generated once, kept in data/keys.env, printed at every start."""
    path = data_dir / "keys.env"
    if path.exists():
        pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        keys = {name.strip(): value.strip() for name, value in pairs}
        if all(keys.get(name) for name in KEY_VARIABLES):
            return keys
    keys = {name: secrets.token_urlsafe(24) for name in KEY_VARIABLES}
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{name}={value}\n" for name, value in keys.items()))
    path.chmod(0o600)
    return keys


def dashboard_banner(host: str, port: int, read_key: str | None) -> str:
    """Where the dashboard is, and which key signs in (the key itself only when it was generated)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    key = f"the read key {read_key}" if read_key else "a read or admin key"
    return f"dashboard: http://{shown}:{port}/  (sign in with {key})"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    server = ServerSettings()
    parser = argparse.ArgumentParser(prog="python -m services", description=__doc__)
    parser.add_argument("--target", default=server.target, help=f"all or a subset of {','.join(TARGETS)}")
    parser.add_argument("--host", default=server.host)
    parser.add_argument("--port", type=int, default=server.port)
    parser.add_argument(
        "--generate-keys",
        action="store_true",
        help="when no keys are configured, generate and keep them under data/",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        targets = parse_targets(args.target)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = CommonSettings()
    generated_read_key = None
    if not settings.has_keys and args.generate_keys:
        keys = generated_keys(settings.data_dir)
        os.environ.update(keys)
        settings = CommonSettings()
        generated_read_key = keys["ANALYTICS_READ_KEYS"]
        print("No access keys configured; using the generated ones kept in", settings.data_dir / "keys.env")
        for name, value in keys.items():
            print(f"  {name}={value}")
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    runtime = Runtime(settings, targets)
    app = build_app(runtime)
    print(f"analytics: {','.join(targets)} on http://{args.host}:{args.port}", flush=True)
    if "query" in targets:
        print(dashboard_banner(args.host, args.port, generated_read_key), flush=True)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,  # keys travel in headers; we log nothing per request
        proxy_headers=False,
        timeout_graceful_shutdown=10,
        # Live messages are ~100 bytes, each compressed once per client: see README (Live).
        ws_per_message_deflate=settings.ws_compression,
        **runtime.server_options(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
