"""`python -m beatfeeds.cli` runs the command line."""

from beatfeeds.cli import main

main()
