"""``python -m symgrad.cli``: the same as the ``symgrad`` command."""
from .main import main

main()
