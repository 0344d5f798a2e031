"""Aurora entry point: `python app.py [--host H] [--port P] [--database-url URL] [--config FILE]`.

Also `python app.py create-user USERNAME [--password-stdin]` and `python app.py token USERNAME`.
"""

from __future__ import annotations

import sys

from aurora.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
