"""Command-line entry points of emberscope."""
