"""`python -m airgrid` runs the CLI."""

from entrypoints.cli import main

main()
