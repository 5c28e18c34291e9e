"""The `belle` command-line tool."""
