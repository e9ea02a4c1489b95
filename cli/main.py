"""The ``symgrad`` command line: one subcommand per job.

Example:
    $ symgrad --version
"""
from __future__ import annotations

import click

import symgrad

from .common import Group


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(symgrad.__version__, prog_name="symgrad")
def main() -> None:
    """Gradients three ways — exact (SymPy), finite differences, backpropagation — side by side.

    \b
    Example:
      symgrad check                      # every built-in course example, three ways
      symgrad derive "(w*x + b - y)**2" --wrt w,b --at x=1,y=2,w=1,b=0
    """


from .check import check_command, examples_command  # noqa: E402  (subcommands register after the group)

main.add_command(check_command)
main.add_command(examples_command)

from .course import course_command  # noqa: E402
from .derive import derive_command  # noqa: E402
from .descend import descend_command  # noqa: E402
from .graph import graph_command  # noqa: E402
from .plot import plot_group  # noqa: E402

main.add_command(course_command)
main.add_command(derive_command)
main.add_command(descend_command)
main.add_command(graph_command)
main.add_command(plot_group)
