"""The ``symgrad`` command line: one subcommand per job.

Example:
    $ symgrad --version
"""
from __future__ import annotations

import click

import symgrad


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(symgrad.__version__, prog_name="symgrad")
def main() -> None:
    """Gradients three ways — exact (SymPy), finite differences, backpropagation — side by side.

    \b
    Example:
      symgrad check                      # every built-in course example, three ways
      symgrad derive "(w*x + b - y)**2" --wrt w,b --at x=1,y=2,w=1,b=0
    """
