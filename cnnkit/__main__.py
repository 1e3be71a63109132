"""`python -m cnnkit` runs the command line."""

from .cli import main

main()
