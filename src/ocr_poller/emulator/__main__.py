"""`python -m ocr_poller.emulator --port PORT --processing-seconds N`: the emulator without the CLI."""

import argparse

from ocr_poller.emulator.server import main_emulator


def main() -> None:
    """Parse the options and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m ocr_poller.emulator", description=__doc__)
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--processing-seconds", type=float, default=3.0, help="time until a task completes")
    parser.add_argument("--client-id", help="accept only this client id (default: any)")
    parser.add_argument("--client-secret", help="the secret that goes with --client-id")
    options = parser.parse_args()
    main_emulator(options.port, options.processing_seconds, options.client_id, options.client_secret)


main()
