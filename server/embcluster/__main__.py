"""``python -m embcluster`` and the ``embcluster`` command.

Only the standard library is imported before :func:`main` runs, so that a Ctrl-C arriving
while the command line module itself is still importing ends with one line, not a traceback.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> int:
    """Run the command line (:func:`embcluster.cli.main`) as the program."""
    try:
        from .cli import main as cli_main

        return cli_main()
    except KeyboardInterrupt:  # what a command does not handle itself (serve and cluster do)
        print("embcluster: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
