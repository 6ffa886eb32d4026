"""The `airgrid` command's groups of sub-commands, one module per group."""
