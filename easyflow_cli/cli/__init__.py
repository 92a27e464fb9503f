"""The command-line interface: one Typer module per command group, wired in `main`."""
