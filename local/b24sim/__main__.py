"""``python -m b24sim``: run the simulator standalone (for the local stack or manual poking with curl)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading

from b24sim.simulator import Simulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="b24sim", description="Run the Bitrix24 simulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--public-host", default=None, help="host name to put in URLs (default: --host)")
    parser.add_argument("--client-id", default=os.environ.get("B24SIM_CLIENT_ID", "local.sim"))
    parser.add_argument(
        "--client-secret",
        default=os.environ.get("B24SIM_CLIENT_SECRET"),
        help="the app's client_secret (or set B24SIM_CLIENT_SECRET)",
    )
    parser.add_argument(
        "--portal",
        action="append",
        default=[],
        metavar="DOMAIN[:PROFILE]",
        help="create a portal at start (profile cloud or box); repeatable",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if not args.client_secret:
        parser.error("--client-secret (or B24SIM_CLIENT_SECRET) is required")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")

    sim = Simulator(
        args.client_id, args.client_secret, host=args.host, port=args.port, public_host=args.public_host
    )
    sim.start()
    for spec in args.portal:
        domain, _, profile = spec.partition(":")
        sim.add_portal(domain, profile=profile or "cloud")
    print(f"b24sim listening on {sim.url} (control API: {sim.url}/_sim/portals)", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
