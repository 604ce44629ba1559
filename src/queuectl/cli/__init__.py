"""The command-line interface: argument parsing in main.py, one module per
command group, rendering (text / --json) in render.py."""
