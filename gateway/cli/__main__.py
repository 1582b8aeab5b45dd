"""``python -m gateway.cli``: the ``deskgate`` command."""

import sys

from gateway.cli import main

sys.exit(main())
