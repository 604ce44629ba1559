"""`python -m queuectl` runs the command-line interface."""

from queuectl.cli.main import main

raise SystemExit(main())
