"""`python -m service` is `intake`."""

from service.cli import main

main()
