"""The command line's commands, one module per group; ``pipeline.app.cli`` assembles them into one program.

Each command imports what it needs when it runs, so that ``--help`` pays for none of the sync path.
"""
