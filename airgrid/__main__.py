"""`python -m airgrid` runs the CLI."""

from airgrid.cli import main

main()
