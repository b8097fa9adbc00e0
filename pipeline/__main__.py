"""`python -m pipeline`: the command line."""

from pipeline.app.cli import app

if __name__ == "__main__":  # a mapping worker process imports this module again: it must not run the command
    app()
