"""The computational graph drawn with matplotlib: forward values and gradients on every node.

Laid out left to right like the notes' diagrams: the inputs of an op stacked
above one another, the op (a circle) to their right, its result (a box holding
``name = value`` and ``grad = dL/dname``) after it; each op sits level with the
mean of its inputs. No Graphviz needed (:meth:`symgrad.graph.Graph.to_dot` exports
DOT for those who have it).

Example:
    >>> from symgrad.graph import Graph
    >>> fig = graph_figure(Graph.from_function(lambda a, b: a * b, {"a": 2.0, "b": -3.0}))
    >>> sorted(t for t in node_texts(fig) if t.startswith("a"))
    ['a = 2\\ngrad = −3']
"""
from __future__ import annotations

from typing import Optional

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from symgrad.graph import Graph, Node

from .style import COLORS, minus, new_figure, slide_style

__all__ = ["graph_figure", "node_texts", "MAX_NODES"]

MAX_NODES = 160           # beyond this a drawing is unreadable: export DOT instead
_FONT = 13                # points, value boxes
_OP_FONT = 15             # points, op circles
_ROW = 1.0                # inches between stacked inputs
_GAP = 0.4                # inches between columns
_LINE = 15                # characters: a longer "name = value" is split over two lines
_TOP, _BOTTOM, _SIDE = 0.8, 0.75, 0.4
_GID = "symgrad-node"     # marks the node texts, for node_texts()


def node_text(node: Node) -> str:
    """What a node's box says: ``name = value`` and ``grad = ...`` (op nodes: their symbol)."""
    if node.kind == "op":
        return minus(node.label)
    first = f"{node.label} = {node.value_text}"
    if len(first) > _LINE:
        first = f"{node.label}\n= {node.value_text}"
    grad = f"\ngrad = {node.grad_text}" if node.grad is not None else ""
    return minus(first + grad)


def node_texts(fig: Figure) -> list:
    """The texts of the node boxes and circles of a figure made by :func:`graph_figure`.

    Example:
        >>> from symgrad.graph import Graph
        >>> node_texts(graph_figure(Graph.from_function(lambda x: x * x, {"x": 3.0})))
        ['x = 3\\ngrad = 6', '×', 'L = 9\\ngrad = 1']
    """
    return [t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == _GID]


def _columns(graph: Graph) -> dict:
    """Column of each node: ops after their deepest input, leaves just before their first consumer."""
    inputs = {n.id: graph.inputs_of(n.id) for n in graph.nodes}
    column: dict = {}
    for n in graph.nodes:                                  # topological order
        column[n.id] = max((column[i] + 1 for i in inputs[n.id]), default=0)
    consumers: dict = {}
    for a, b in graph.edges:
        consumers.setdefault(a, []).append(b)
    for n in graph.nodes:
        if not inputs[n.id] and n.id in consumers:
            column[n.id] = min(column[c] for c in consumers[n.id]) - 1
    return column


def _rows(graph: Graph) -> dict:
    """Row of each node: leaves in consecutive slots (first input on top), others level with their inputs."""
    inputs = {n.id: graph.inputs_of(n.id) for n in graph.nodes}
    row: dict = {}
    slots = [0]

    def place(node_id: int) -> float:
        if node_id not in row:
            if inputs[node_id]:
                below = [place(i) for i in inputs[node_id]]
                row[node_id] = sum(below) / len(below)
            else:
                row[node_id] = slots[0]
                slots[0] += 1
        return row[node_id]

    place(graph.root)
    return row


def _width(text: str, size: float) -> float:
    """Approximate width in inches of the longest line of ``text`` at ``size`` points."""
    return max(len(line) for line in text.split("\n")) * size * 0.6 / 72 + 0.35


@slide_style
def graph_figure(graph: Graph, title: Optional[str] = None) -> Figure:
    """Draw ``graph``: value boxes (``name = value``, ``grad = ...``), op circles, arrows forward.

    Boxes are coloured by role (weight, data, intermediate, output) with a legend;
    the figure grows with the graph so that the text keeps its size.

    Example:
        >>> from symgrad.graph import Graph
        >>> fig = graph_figure(Graph.from_expression("(a*b + c)*f", {"a": 2, "b": -3, "c": 10, "f": -2}))
        >>> [t for t in node_texts(fig) if t.startswith("L")]
        ['L = −8\\ngrad = 1']
    """
    if len(graph.nodes) > MAX_NODES:
        raise ValueError(f"the graph has {len(graph.nodes)} nodes, too many to draw readably (at most "
                         f"{MAX_NODES}); write it as .dot for Graphviz instead")
    texts = {n.id: node_text(n) for n in graph.nodes}
    column, row = _columns(graph), _rows(graph)
    ncols = max(column.values()) + 1
    widths = [0.0] * ncols
    for n in graph.nodes:
        size = _OP_FONT if n.kind == "op" else _FONT
        widths[column[n.id]] = max(widths[column[n.id]], _width(texts[n.id], size))
    centers, x = [], _SIDE
    for w in widths:
        centers.append(x + w / 2)
        x += w + _GAP
    nrows = max(row.values()) + 1
    width = max(x - _GAP + _SIDE, 6.0)
    key = ",   ".join(f"{label} = {expression}" for label, expression in graph.definitions)
    footer = _BOTTOM + (0.4 if key else 0.0)
    height = nrows * _ROW + _TOP + footer
    fig = new_figure(width, height, constrained=False)
    ax = fig.add_axes((0, footer / height, 1, (nrows * _ROW) / height))
    ax.set_xlim(0, width)
    ax.set_ylim(nrows * _ROW, 0)
    ax.set_axis_off()
    offset = (width - (x - _GAP + _SIDE)) / 2                      # centre a narrow graph
    artists = {}
    for n in graph.nodes:
        xy = (centers[column[n.id]] + offset, (row[n.id] + 0.5) * _ROW)
        if n.kind == "op":
            box = dict(boxstyle="circle,pad=0.3", fc=COLORS["op"], ec="#555555", lw=1.2)
            size, weight = _OP_FONT, "bold"
        else:
            box = dict(boxstyle="round,pad=0.45", fc=COLORS[n.role], ec="#333333",
                       lw=2.0 if n.role == "output" else 1.2)
            size, weight = _FONT, "normal"
        artists[n.id] = ax.text(*xy, texts[n.id], ha="center", va="center", fontsize=size, fontweight=weight,
                                bbox=box, gid=_GID, zorder=3, linespacing=1.4)
    for a, b in graph.edges:
        ax.annotate("", xy=artists[b].get_position(), xytext=artists[a].get_position(), zorder=4,
                    arrowprops=dict(arrowstyle="-|>", color="#444444", lw=1.4, shrinkA=2, shrinkB=2,
                                    patchA=artists[a].get_bbox_patch(), patchB=artists[b].get_bbox_patch(),
                                    mutation_scale=16))
    heading = title if title is not None else graph.title or "Computational graph: forward values and gradients"
    fig.text(0.5, 1 - 0.45 / height, minus(heading), ha="center", va="center", fontsize=16, fontweight="bold",
             parse_math=False)                  # a title is plain text: "$" is a dollar sign, not mathtext
    if key:
        fig.text(0.5, (_BOTTOM + 0.1) / height, minus(key), ha="center", va="bottom", fontsize=_FONT,
                 color="#222222", wrap=True)
    roles = [r for r in ("param", "data", "intermediate", "output") if any(n.role == r for n in graph.values)]
    names = {"param": "weight (differentiated)", "data": "data (fixed)", "intermediate": "intermediate",
             "output": "output"}
    handles = [Patch(fc=COLORS[r], ec="#333333", label=names[r]) for r in roles]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=12,
               bbox_to_anchor=(0.5, 0.1 / height))
    return fig
