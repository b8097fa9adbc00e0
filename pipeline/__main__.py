"""`python -m pipeline`: the command line."""

from pipeline.app.cli import app

app()
