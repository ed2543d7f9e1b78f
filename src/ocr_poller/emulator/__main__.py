"""`python -m ocr_poller.emulator ...`: the same as `ocr-poller emulator ...`."""

import sys

from ocr_poller.cli import main

raise SystemExit(main(["emulator", *sys.argv[1:]]))
