"""`python -m ocr_poller_tools.emulator ...`: the same as `ocr-poller emulator ...`."""

import sys

from ocr_poller_tools.cli import main

raise SystemExit(main(["emulator", *sys.argv[1:]]))
