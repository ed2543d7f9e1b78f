"""Developer and operator tools: the ocr-poller command, the local run, the moto sandbox, the emulator.

Installed with the package, never deployed: nothing in the function imports them.
"""
