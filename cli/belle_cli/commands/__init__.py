"""The `belle` command groups, one module each; `belle_cli.main` assembles them into one app."""
