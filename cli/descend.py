"""``symgrad descend``: gradient descent on an expression, printed as a table (or JSON), optionally drawn.

Example:
    $ symgrad descend "(w*x - y)**2" --at w=0,x=1,y=2 --wrt w --lr 0.1 --steps 50
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import click

from .common import (
    METHODS, OPTIMIZERS, Command, at_option, echo_json, figure_path, guarded, require_positive, usable_loss,
    write_figure,
)


@click.command("descend", cls=Command)
@click.argument("expression")
@at_option("The start of every weight and the value of every data variable.", required=True)
@click.option("--wrt", metavar="NAME,...", help="The weights to descend on (default: every variable).")
@click.option("--lr", default=0.1, show_default=True, type=float, help="The learning rate.")
@click.option("--steps", default=50, show_default=True, type=click.IntRange(0, 1_000_000), help="Updates to make.")
@click.option("--method", type=click.Choice(METHODS), default="reverse", show_default=True,
              help="The gradient source.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="sgd", show_default=True)
@click.option("--fd-method", type=click.Choice(("forward", "backward", "central", "complex", "richardson")),
              default="central", show_default=True, help="The scheme of --method finite_diff.")
@click.option("--every", type=click.IntRange(1), help="Print one row every N steps (default: about 20 rows).")
@click.option("--plot", "plot", callback=figure_path, metavar="FILE",
              help="Also draw the descent: on the loss surface for two weights, else the loss curve "
                   "(.png, .svg or .pdf).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole trajectory as JSON.")
def descend_command(expression: str, at: tuple, wrt: Optional[str], lr: float, steps: int, method: str,
                    optimizer: str, fd_method: str, every: Optional[int], plot: Optional[str],
                    as_json: bool) -> None:
    """Minimize EXPRESSION by gradient descent from the --at values, updating the --wrt weights.

    Each step is w <- w - lr * dL/dw with the gradient from backprop, the exact
    SymPy partials or finite differences (--method). Prints the loss, the gradient
    norm and the weights along the way; if the loss diverges (it grows a
    millionfold, or overflows) the descent stops there and says so on stderr.

    \b
    Example:
      symgrad descend "(w*x - y)**2" --at w=0,x=1,y=2 --wrt w --lr 0.1 --steps 50
      symgrad descend "(w*x + b - y)**2" --at w=0,b=0,x=1,y=2 --wrt w,b --lr 0.2 --plot descent.png
    """
    import symgrad as sg  # noqa: PLC0415

    f, params, data = usable_loss(expression, at, wrt)
    require_positive(lr, "--lr")
    traj = guarded(lambda: sg.descend(f, params, data, lr=lr, steps=steps, method=method, optimizer=optimizer,
                                      fd_method=fd_method))
    if as_json:
        echo_json({"expression": expression, **traj.to_dict()})
    else:
        click.echo(traj.to_table(every or max(1, steps // 20)))
    if traj.notes:
        more = f" (and {len(traj.notes) - 1} more steps at a kink)" if len(traj.notes) > 1 else ""
        click.echo(f"note: {traj.notes[0]}{more}", err=True)
    if traj.stopped:
        click.echo(traj.stopped, err=True)
    if plot:
        write_figure(lambda: _descent_figure(f, data, traj, expression), plot)


def _descent_figure(f: Callable, data: dict, traj: Any, expression: str) -> Any:
    from symgrad.plots import loss_curves_figure, surface_figure  # noqa: PLC0415

    title = f"Gradient descent on {expression}"
    if len(traj.names) == 2:
        return surface_figure(f, [traj], data=data, title=title)
    return loss_curves_figure([traj], title=title)
