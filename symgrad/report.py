"""The gradient-check report: one row per weight element, judged against the exact value.

:func:`judge` takes the gradients each method produced (exact SymPy partials,
finite differences, backpropagation or a hand-written backward) and returns a
:class:`CheckReport`. The exact value is the reference where it exists; without it
finite differences are. An entry agrees when ``|value - reference| <= atol +
rtol * |reference|``, with ``rtol``/``atol`` taken from the dtype and the
finite-difference scheme unless given (see :func:`default_tolerances`); backprop
against the exact value involves no finite differences, so it gets the tight
"no finite differences" tolerances, scaled by its own weight's gradient. With
three values the verdict says which side is wrong:

=================  ==========================================================
verdict            meaning
=================  ==========================================================
ok                 every method agrees with the reference
backprop wrong     backprop differs, exact ≈ finite differences: a backward bug
fd off             finite differences differ, exact ≈ backprop: step or rounding
model differs      exact differs, backprop ≈ finite differences: the symbolic
                   model is not the code
all differ         no two methods agree
disagree           two methods only, and they differ
kink               not differentiable here, and backprop lies between the
                   one-sided slopes (a subgradient)
backprop off kink  not differentiable here, and backprop lies outside the
                   one-sided slopes (no subgradient)
unchecked          fewer than two methods gave a value
wrong shape        the tested gradient does not have the weight's shape
=================  ==========================================================

Example:
    >>> import numpy as np
    >>> report = judge({"symbolic": {"w": np.array([1.0, 2.0])}, "finite_diff": {"w": np.array([1.0, 2.0])},
    ...                 "backprop": {"w": np.array([1.0, 3.0])}}, {"w": (2,)}, value=1.0)
    >>> report.ok, report.rows[0].element, report.rows[0].verdict
    (False, 'w[1]', 'backprop wrong')
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple, Optional, Sequence

import numpy as np

__all__ = ["Row", "CheckReport", "judge", "default_tolerances", "METHODS", "VERDICTS"]

METHODS = ("symbolic", "finite_diff", "backprop")

TITLES = {"symbolic": "exact", "finite_diff": "finite diff", "backprop": "backprop"}
SHORT = {"exact": "ex", "finite diff": "fd", "backprop": "bp", "backward": "bw"}   # column title -> error prefix

VERDICTS = {
    "ok": "every method agrees with the reference",
    "backprop wrong": "{bp} differs while exact ≈ finite differences: a bug in the backward pass",
    "fd off": "finite differences differ while exact ≈ {bp}: a step-size or rounding problem, not a bug",
    "model differs": "exact differs while {bp} ≈ finite differences: the symbolic model is not what the code computes",
    "all differ": "no two methods agree",
    "disagree": "the two methods that apply differ (no third value to tell which one is wrong)",
    "kink": "not differentiable here: one-sided differences disagree ({bp} lies between them, a subgradient)",
    "backprop off kink": "not differentiable here, and {bp} lies outside the one-sided slopes: not a subgradient",
    "unchecked": "fewer than two methods gave a value: nothing to compare",
    "wrong shape": "the {bp} gradient does not have the shape of its input",
}
PASSING = ("ok", "kink")
SCHEMES = {"forward": "forward differences", "backward": "backward differences", "central": "central differences",
           "complex": "complex step", "richardson": "Richardson extrapolation"}

# (rtol, atol per unit of scale) by finite-difference scheme, for float64 and for float32, where the scale is
# |loss| + the largest |gradient| entry. Central differences in float64 err by about eps**(2/3) ~ 4e-11 of that
# scale; one-sided ones by sqrt(eps) ~ 1.5e-8; in float32 by ~2e-5 and ~3e-4. The tolerances leave a margin of
# 10-100 above those errors, and a scaled loss gets the same verdicts. Backprop against the exact value uses the
# None row with the largest |exact gradient| of its own weight as scale, plus the rounding _ROUNDING·eps·(|L| +
# max|gradient|) of a backward pass whose gradient cancels to about 0.
_TOLERANCES = {
    "float64": {"forward": (1e-4, 1e-6), "backward": (1e-4, 1e-6), "central": (1e-6, 1e-8),
                "richardson": (1e-7, 1e-9), "complex": (1e-9, 1e-11), None: (1e-9, 1e-11)},
    "float32": {"forward": (5e-2, 1e-2), "backward": (5e-2, 1e-2), "central": (1e-2, 1e-3),
                "richardson": (1e-2, 1e-3), "complex": (1e-4, 1e-5), None: (1e-4, 1e-5)},
}
_ROUNDING = 256
# Finite differences whose own error estimate exceeds this fraction of the reference cannot judge an entry: their
# tolerance grows by that estimate only up to this much, so a gradient a few per cent off still fails there.
_FD_ERROR_CAP = 1e-4


def default_tolerances(dtype: Any, fd_method: Optional[str] = "central", scale: float = 1.0) -> tuple:
    """``(rtol, atol)`` for comparing gradients computed in ``dtype`` with the ``fd_method`` scheme.

    ``atol`` is proportional to ``scale``, which :func:`judge` takes as ``|loss| +
    max |gradient|``: the rounding error of a finite difference grows with
    ``|loss|``, its truncation error with the size of the derivatives.
    ``fd_method=None`` means no finite differences are involved (exact against
    backprop). float32 (and anything less precise) gets the looser float32 tolerances.

    Example:
        >>> default_tolerances(np.float64, "central")
        (1e-06, 1e-08)
        >>> default_tolerances(np.float32, "central", scale=10.0)
        (0.01, 0.01)
    """
    precise = np.finfo(np.dtype(dtype)).eps <= np.finfo(np.float64).eps if np.dtype(dtype).kind == "f" else True
    table = _TOLERANCES["float64" if precise else "float32"]
    if fd_method not in table:
        raise ValueError(f"unknown finite-difference method {fd_method!r}; "
                         f"choose one of {', '.join(m for m in table if m)}")
    rtol, atol = table[fd_method]
    return rtol, atol * float(scale)


class Row(NamedTuple):
    """One weight element: each method's value, each one's error against the reference, the verdict.

    ``abs_error`` and ``rel_error`` map a method to ``|value - reference|`` and
    that divided by ``|reference|``; the reference itself (``reference``) has no
    entry. A value is None where its method did not apply.

    ``tolerance`` bounds the errors that involve finite differences;
    ``exact_tolerance`` (None unless compared) bounds backprop against the exact
    value, with no finite-difference error in it.

    Example:
        >>> r = Row("w", (1,), 2.0, 2.0, 3.0, {"finite_diff": 0.0, "backprop": 1.0},
        ...         {"finite_diff": 0.0, "backprop": 0.5}, 2e-6, "backprop wrong", "symbolic", 2e-9)
        >>> r.element, r.ok
        ('w[1]', False)
    """

    name: str
    index: tuple
    symbolic: Optional[float]
    finite_diff: Optional[float]
    backprop: Optional[float]
    abs_error: Mapping[str, float]
    rel_error: Mapping[str, float]
    tolerance: float
    verdict: str
    reference: Optional[str]
    exact_tolerance: Optional[float] = None

    @property
    def element(self) -> str:
        """``name[i, j]``, or the name alone for a scalar weight."""
        return self.name if not self.index else f"{self.name}[{', '.join(str(i) for i in self.index)}]"

    @property
    def ok(self) -> bool:
        """True when the entry passes (it agrees, or it sits on a kink where no gradient exists)."""
        return self.verdict in PASSING

    def value(self, method: str) -> Optional[float]:
        """The value ``method`` gave for this element (None where it did not apply)."""
        return getattr(self, method)

    def to_dict(self) -> dict:
        """The row as JSON-ready types (None for a missing or non-finite number)."""
        return {"name": self.name, "index": list(self.index), "element": self.element,
                **{m: _json_number(self.value(m)) for m in METHODS},
                "abs_error": {m: _json_number(e) for m, e in self.abs_error.items()},
                "rel_error": {m: _json_number(e) for m, e in self.rel_error.items()},
                "tolerance": _json_number(self.tolerance), "exact_tolerance": _json_number(self.exact_tolerance),
                "verdict": self.verdict, "reference": self.reference}


@dataclass
class CheckReport:
    """The three-way gradient check: rows worst first, tolerances, timings and notes.

    ``ok`` is True when every entry passes. ``timings`` maps each method that ran
    to its time in seconds; ``notes`` says which method did not apply, and why.
    ``labels`` names the columns (``backprop`` reads "backward" in
    :func:`symgrad.check_backward`).

    Example:
        >>> report = judge({"finite_diff": {"x": 10.0}, "backprop": {"x": 10.0}}, {"x": ()}, value=25.0)
        >>> report.ok, report.max_abs_error, len(report.rows)
        (True, 0.0, 1)
    """

    rows: list
    rtol: float
    atol: float
    dtype: str
    fd_method: Optional[str]
    value: Optional[float] = None
    timings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    title: str = ""
    labels: dict = field(default_factory=lambda: dict(TITLES))
    atol_rule: str = ""
    exact_rule: str = ""

    @property
    def ok(self) -> bool:
        """True when every entry agrees (entries on a kink pass; see ``notes``)."""
        return bool(self.rows) and all(r.ok for r in self.rows)

    @property
    def methods(self) -> list:
        """The methods that gave at least one value, in the order symbolic, finite_diff, backprop."""
        return [m for m in METHODS if any(r.value(m) is not None for r in self.rows)]

    @property
    def reference(self) -> Optional[str]:
        """The judge of most rows: "symbolic" where the exact value exists, else "finite_diff"."""
        references = [r.reference for r in self.rows if r.reference]
        return max(set(references), key=references.count) if references else None

    @property
    def failures(self) -> list:
        """The rows that do not pass, worst first."""
        return [r for r in self.rows if not r.ok]

    @property
    def max_abs_error(self) -> float:
        """The largest ``|value - reference|`` over all rows and methods (NaN if nothing was compared)."""
        return _largest(e for r in self.rows for e in r.abs_error.values())

    @property
    def max_rel_error(self) -> float:
        """The largest relative error over all rows and methods (NaN if nothing was compared)."""
        return _largest(e for r in self.rows for e in r.rel_error.values())

    # --- text ---------------------------------------------------------------------------------------
    def summary(self) -> str:
        """One line: OK or FAILED, how many entries agree, the largest errors.

        Example:
            >>> judge({"finite_diff": {"x": 10.0}, "backprop": {"x": 10.0}}, {"x": ()}).summary()
            'OK: 1 of 1 entries agree (max abs error 0, max rel error 0)'
        """
        passed = sum(r.ok for r in self.rows)
        state = "OK" if self.ok else "FAILED"
        return (f"{state}: {passed} of {len(self.rows)} entries agree "
                f"(max abs error {_num(self.max_abs_error, 3)}, max rel error {_num(self.max_rel_error, 3)})")

    def header(self) -> list:
        """The lines above the table: title, summary, reference and tolerance, timings."""
        lines = [self.title] if self.title else []
        lines += [self.summary(), self.tolerance_text()]
        if self.timings:
            lines.append("time: " + ", ".join(f"{self.labels.get(m, m)} {_seconds(t)}"
                                              for m, t in self.timings.items()))
        return lines

    def tolerance_text(self) -> str:
        """What judged the entries, and with which tolerance.

        Example:
            >>> judge({"finite_diff": {"x": 10.0}, "backprop": {"x": 10.0}}, {"x": ()}).tolerance_text()
            'judged against finite differences: |error| <= atol + rtol·|reference|, rtol=1e-06, atol=1e-07 = 1e-08·(|L| + max|gradient|) (float64, central differences)'
        """
        reference = {"symbolic": "the exact value (SymPy)", "finite_diff": "finite differences", None: "nothing"}
        scheme = f", {SCHEMES.get(self.fd_method, self.fd_method)}" if self.fd_method else ""
        rule = f" = {self.atol_rule}" if self.atol_rule else ""
        exact = f"; {self.labels['backprop']} against the exact value: {self.exact_rule}" if self.exact_rule else ""
        return (f"judged against {reference[self.reference]}: |error| <= atol + rtol·|reference|, "
                f"rtol={self.rtol:.3g}, atol={self.atol:.3g}{rule} ({self.dtype}{scheme}){exact}")

    def footer(self) -> list:
        """The lines below the table: what each verdict that occurs means, then the notes."""
        tested = self.labels["backprop"]
        present = {r.verdict for r in self.rows}
        lines = [f"{v.replace('backprop', tested)}: {meaning.format(bp=tested)}" for v, meaning in VERDICTS.items()
                 if v not in ("ok", "disagree") and v.replace("backprop", tested) in present]
        pairs = {tuple(m for m in METHODS if r.value(m) is not None and m in (*r.abs_error, r.reference))
                 for r in self.rows if r.verdict == "disagree"}
        lines += [f"disagree: {self.labels[a]} and {self.labels[b]} differ (no "
                  f"{self.labels[next(m for m in METHODS if m not in (a, b))]} value to tell which one is wrong)"
                  for a, b in sorted(p for p in pairs if len(p) == 2)]
        return lines + [f"note: {n}" for n in self.notes]

    def to_table(self, rows: Optional[Sequence[Row]] = None, markdown: bool = False) -> str:
        """The table of ``rows`` (default: all, worst first), as aligned text or Markdown.

        "tolerance" bounds the comparisons with finite differences; "bp tol", where
        backprop was compared with the exact value, bounds that comparison.

        Example:
            >>> print(judge({"finite_diff": {"x": 10.0}, "backprop": {"x": 10.0}}, {"x": ()}).to_table())
            weight  finite diff  backprop  bp err  bp rel  tolerance  verdict
            x       10           10        0       0       1e-05      ok
        """
        rows = self.rows if rows is None else list(rows)
        methods = self.methods
        compared = [m for m in methods if any(m in r.abs_error for r in rows)]
        exact = [f"{SHORT.get(self.labels['backprop'], 'bp')} tol"] if any(r.exact_tolerance for r in rows) else []
        head = (["weight"] + [self.labels[m] for m in methods]
                + [f"{SHORT.get(self.labels[m], m)} {kind}" for m in compared for kind in ("err", "rel")]
                + ["tolerance"] + exact + ["verdict"])
        body = [[r.element] + [_num(r.value(m), 10) for m in methods]
                + [_num(errors.get(m), 2) for m in compared for errors in (r.abs_error, r.rel_error)]
                + [_num(r.tolerance, 2)] + [_num(r.exact_tolerance, 2)] * len(exact) + [r.verdict] for r in rows]
        if markdown:
            return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                             + ["| " + " | ".join(line) + " |" for line in body])
        widths = [max(len(line[k]) for line in [head] + body) for k in range(len(head))]
        return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
                         for line in [head] + body)

    def __str__(self) -> str:
        return "\n".join(self.header() + [self.to_table()] + self.footer())

    def __repr__(self) -> str:
        return f"<CheckReport {self.summary()}>"

    def _repr_markdown_(self) -> str:
        """The report in a notebook: header lines, the table in Markdown, the footer lines."""
        escaped = [html.escape(line) for line in self.header()] + [self.to_table(markdown=True)]
        return "\n\n".join(escaped + [html.escape(line) for line in self.footer()])

    def to_dict(self) -> dict:
        """The whole report as JSON-ready types (non-finite numbers become None).

        Example:
            >>> import json
            >>> d = judge({"finite_diff": {"x": 10.0}, "backprop": {"x": 10.0}}, {"x": ()}).to_dict()
            >>> d["ok"], d["rows"][0]["backprop"], json.loads(json.dumps(d))["reference"]
            (True, 10.0, 'finite_diff')
        """
        return {"ok": self.ok, "title": self.title, "summary": self.summary(), "value": _json_number(self.value),
                "dtype": self.dtype, "fd_method": self.fd_method, "rtol": self.rtol, "atol": self.atol,
                "reference": self.reference, "methods": self.methods, "labels": dict(self.labels),
                "timings": {m: _json_number(t) for m, t in self.timings.items()},
                "max_abs_error": _json_number(self.max_abs_error), "max_rel_error": _json_number(self.max_rel_error),
                "counts": {"entries": len(self.rows), "agree": sum(r.ok for r in self.rows),
                           "disagree": len(self.failures)},
                "notes": list(self.notes), "rows": [r.to_dict() for r in self.rows]}


def judge(gradients: Mapping[str, Mapping[str, Any]], shapes: Mapping[str, tuple], *,
          rtol: Optional[float] = None, atol: Optional[float] = None, dtype: Any = np.float64,
          fd_method: Optional[str] = "central", value: Optional[float] = None,
          kinks: Optional[Mapping[str, np.ndarray]] = None, one_sided: Optional[Mapping[str, np.ndarray]] = None,
          smooth: bool = False, slack: Optional[Mapping[str, np.ndarray]] = None,
          fd_error: Optional[Mapping[str, np.ndarray]] = None, **report_fields: Any) -> CheckReport:
    """Compare the gradients of each method entry by entry and build the report, worst rows first.

    ``gradients`` maps a method ("symbolic", "finite_diff", "backprop") to
    ``{weight name: gradient}``; a weight missing from a method's dict (or a
    method missing altogether) means the method did not apply to it. A gradient
    whose shape is not the weight's (``shapes``) is reported as "wrong shape".
    ``kinks`` maps a weight to a boolean mask of the entries where the function
    is not differentiable, ``one_sided`` to the ``(left, right)`` slopes there
    (shape ``(*shape, 2)``): backprop passes a kink when it lies between them.
    ``smooth=True`` says the exact value comes from an expression without
    non-smooth functions (abs, max, ...): where it is finite, it judges kinks too.
    Tolerances default to :func:`default_tolerances`: comparisons with finite
    differences get the scheme's, ``atol`` scaled by ``|value| + max |gradient|``;
    backprop against the exact value the tight ones of ``fd_method=None``, scaled
    by its weight's largest exact gradient. ``slack`` maps a weight to an absolute
    amount added to both tolerances of each of its entries (the rounding that any
    float64 evaluation of that derivative can be expected to carry); ``fd_error``
    to the finite differences' own error estimate, added to the tolerance of the
    comparisons that involve them (up to 1e-4 of the reference: beyond that they
    are too coarse to judge, and the entry fails as before). A NaN finite difference outside a kink (they do
    not settle there) is not compared.

    Example:
        >>> judge({"symbolic": {"b": 1.0}, "finite_diff": {"b": 1.3}, "backprop": {"b": 1.0}},
        ...       {"b": ()}).rows[0].verdict
        'fd off'
        >>> judge({"symbolic": {"b": 1.0}, "finite_diff": {"b": 1.0}, "backprop": {"b": 1.0 + 1e-7}},
        ...       {"b": ()}).rows[0].verdict
        'backprop wrong'
        >>> kink = {"b": np.array(True)}
        >>> [judge({"finite_diff": {"b": np.nan}, "backprop": {"b": g}}, {"b": ()}, kinks=kink,
        ...        one_sided={"b": np.array([-1.0, 1.0])}).rows[0].verdict for g in (0.5, 5.0)]
        ['kink', 'backprop off kink']
    """
    notes = list(report_fields.pop("notes", []))
    labels = report_fields.get("labels", TITLES)
    columns = {name: {} for name in shapes}
    wrong_shape = set()
    for name, shape in shapes.items():
        for method in METHODS:
            grad = gradients.get(method, {}).get(name)
            if grad is None:
                continue
            grad = np.asarray(grad, dtype=np.float64)
            if grad.shape != tuple(shape):
                wrong_shape.add(name)
                notes.append(_shape_note(name, grad.shape, tuple(shape), method, labels))
                continue
            columns[name][method] = grad
    scheme = fd_method if "finite_diff" in gradients else None
    default_rtol, base_atol = default_tolerances(dtype, scheme)
    exact_rtol, exact_atol = default_tolerances(dtype, None)
    scale = _scale(value, columns)
    rounding = _ROUNDING * float(np.finfo(_float_dtype(dtype)).eps) * scale
    given_rtol, given_atol = rtol, atol
    rtol = default_rtol if rtol is None else float(rtol)
    atol_rule = "" if atol is not None else f"{base_atol:.0e}·(|L| + max|gradient|)" + (
        " + the finite differences' own error estimate" if fd_error and scheme else "")
    atol = base_atol * scale if atol is None else float(atol)
    if not (0 <= rtol < math.inf and 0 <= atol < math.inf):
        raise ValueError(f"rtol and atol must be finite non-negative numbers, got rtol={rtol}, atol={atol}")
    exact_rtol = exact_rtol if given_rtol is None else rtol
    exact_rule = ("" if "symbolic" not in gradients or "backprop" not in gradients else
                  f"rtol={exact_rtol:.3g}, atol=" + (f"{exact_atol:.0e}·max|exact gradient of the weight| + "
                                                     f"{rounding:.2g}" if given_atol is None else f"{atol:.3g}"))
    rows, keys = [], []
    for name, shape in shapes.items():
        kink = np.zeros(shape, dtype=bool) if not kinks or kinks.get(name) is None else np.asarray(kinks[name])
        sides = np.full((*shape, 2), np.nan) if not one_sided or one_sided.get(name) is None \
            else np.asarray(one_sided[name], dtype=np.float64)
        weight_atol = atol if given_atol is not None else exact_atol * _weight_scale(columns[name]) + rounding
        extra, fd_extra = (np.nan_to_num(np.asarray(by_weight[name], dtype=float)) if by_weight
                           and by_weight.get(name) is not None else np.zeros(shape) for by_weight in (slack, fd_error))
        weight_rows, weight_keys = _rows(name, tuple(shape), columns[name], kink & ~(smooth & _finite_exact(
            columns[name], shape)), kink, sides, name in wrong_shape, (rtol, atol + extra, fd_extra),
            (exact_rtol, weight_atol + extra), labels["backprop"])
        rows += weight_rows
        keys.append(weight_keys)
    failing, on_kink, ratio = (np.concatenate(k) for k in zip(*keys)) if keys else ((), (), ())
    order = np.lexsort((-np.asarray(ratio, dtype=float), ~np.asarray(on_kink, dtype=bool),
                        ~np.asarray(failing, dtype=bool)))
    rows = [rows[i] for i in order.tolist()]
    return CheckReport(rows=rows, rtol=rtol, atol=atol, dtype=np.dtype(dtype).name, value=value, fd_method=scheme,
                       notes=notes, atol_rule=atol_rule, exact_rule=exact_rule, **report_fields)


def _float_dtype(dtype: Any) -> np.dtype:
    """``dtype`` if it is a float type, else float64 (whose rounding then applies)."""
    return np.dtype(dtype) if np.dtype(dtype).kind == "f" else np.dtype(np.float64)


def _finite_exact(columns: Mapping[str, np.ndarray], shape: tuple) -> np.ndarray:
    """Where the exact value exists (a boolean mask of the weight's shape)."""
    return np.isfinite(columns["symbolic"]) if "symbolic" in columns else np.zeros(shape, dtype=bool)


def _weight_scale(columns: Mapping[str, np.ndarray]) -> float:
    """The largest finite |exact gradient| of one weight (0 without one)."""
    exact = columns.get("symbolic")
    finite = np.abs(exact[np.isfinite(exact)]) if exact is not None else ()
    return float(finite.max()) if len(finite) else 0.0


def _scale(value: Optional[float], columns: Mapping[str, dict]) -> float:
    """|loss| + the largest |reference gradient| entry (exact where it exists, else finite differences); 1 if 0."""
    largest = 0.0
    for by_method in columns.values():
        for method in ("symbolic", "finite_diff"):
            finite = np.abs(by_method[method][np.isfinite(by_method[method])]) if method in by_method else ()
            if len(finite):
                largest = max(largest, float(finite.max()))
                break
    scale = (abs(value) if value is not None and math.isfinite(value) else 0.0) + largest
    return scale if scale > 0 and math.isfinite(scale) else 1.0


def _rows(name: str, shape: tuple, columns: dict, kink: np.ndarray, fd_kink: np.ndarray, sides: np.ndarray,
          wrong_shape: bool, tolerances: tuple, exact_tolerances: tuple, tested: str) -> tuple:
    """The rows of one weight, and their sort keys (failing, on a kink, error over tolerance), all vectorized.

    ``tolerances`` is (rtol, atol, the finite differences' error estimate), ``exact_tolerances`` (rtol, atol);
    an atol or estimate is a number or an array of the weight's shape. The estimate widens the tolerance of
    the comparisons with finite differences by at most ``_FD_ERROR_CAP`` of the reference.
    ``kink``: the entries judged as kinks (backprop between the one-sided slopes ``sides``); ``fd_kink``: where
    finite differences found one (no finite-difference value to compare there)."""
    (rtol, atol, fd_estimate), (exact_rtol, exact_atol) = tolerances, exact_tolerances
    size = int(np.prod(shape, dtype=int))
    atol, exact_atol, fd_estimate = (np.broadcast_to(a, shape).reshape(-1) for a in (atol, exact_atol, fd_estimate))
    nan = np.full(size, np.nan)
    exact, fd, bp = (columns[m].reshape(-1) if m in columns else nan for m in METHODS)
    kink, fd_kink = kink.reshape(-1), fd_kink.reshape(-1)
    by_exact = np.isfinite(exact)
    has_fd = ("finite_diff" in columns) & ~np.isnan(fd)       # NaN: at a kink, or where they do not settle
    by_fd = ~by_exact & has_fd
    reference = np.where(by_exact, exact, fd)
    tolerance = atol + rtol * np.abs(reference) + np.minimum(fd_estimate, _FD_ERROR_CAP * np.abs(reference))
    tolerance = np.where(np.isfinite(tolerance), tolerance, atol)
    exact_tolerance = np.where(by_exact, exact_atol + exact_rtol * np.abs(reference), tolerance)
    fd_error, bp_error = np.abs(fd - reference), np.abs(bp - reference)
    fd_close, bp_close = fd_error <= tolerance, bp_error <= exact_tolerance
    fd_compared = by_exact & has_fd & ~fd_kink
    bp_compared = (by_exact | by_fd) & ("backprop" in columns)
    compared = fd_compared.astype(int) + bp_compared
    left, right = np.fmin(*sides.reshape(-1, 2).T), np.fmax(*sides.reshape(-1, 2).T)
    kink_tolerance = atol + rtol * np.fmax(np.abs(left), np.abs(right))
    subgradient = ~((bp < left - kink_tolerance) | (bp > right + kink_tolerance))     # True where NaN: unknown
    verdicts = np.select(
        [np.full(size, wrong_shape), kink & subgradient, kink, compared == 0,
         (fd_close | ~fd_compared) & (bp_close | ~bp_compared), by_fd | (compared == 1), fd_close, bp_close,
         np.abs(fd - bp) <= tolerance],
        ["wrong shape", "kink", f"{tested} off kink", "unchecked", "ok", "disagree", f"{tested} wrong", "fd off",
         "model differs"],
        "all differ")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.fmax(np.where(fd_compared & (fd_error != 0), fd_error / tolerance, 0.0),
                        np.where(bp_compared & (bp_error != 0), bp_error / exact_tolerance, 0.0))
        fd_rel = np.where(fd_error == 0, 0.0, fd_error / np.abs(reference))
        bp_rel = np.where(bp_error == 0, 0.0, bp_error / np.abs(reference))
    ratio = np.where(np.isnan(ratio) | (fd_compared & np.isnan(fd_error)) | (bp_compared & np.isnan(bp_error)),
                     np.inf, ratio)
    judges = np.where(by_exact, "symbolic", np.where(by_fd, "finite_diff", ""))
    given = [columns[m].reshape(-1).tolist() if m in columns else [None] * size for m in METHODS]
    exact_tolerance = np.where(by_exact & bp_compared, exact_tolerance, np.nan)
    columns_of_rows = [x.tolist() for x in (fd_compared, bp_compared, fd_error, bp_error, fd_rel, bp_rel,
                                            np.where(kink, kink_tolerance, tolerance), verdicts, judges,
                                            exact_tolerance)]
    rows = []
    for (index, exact_i, fd_i, bp_i, fd_on, bp_on, fd_e, bp_e, fd_r, bp_r, tol, verdict,
         judge_name, exact_tol) in zip(np.ndindex(*shape), *given, *columns_of_rows):
        abs_error, rel_error = {}, {}
        if fd_on:
            abs_error["finite_diff"], rel_error["finite_diff"] = fd_e, fd_r
        if bp_on:
            abs_error["backprop"], rel_error["backprop"] = bp_e, bp_r
        rows.append(_new_row(Row, (name, index, exact_i, fd_i, bp_i, abs_error, rel_error, tol, verdict,
                                   judge_name or None, None if math.isnan(exact_tol) else exact_tol)))
    failing = ~np.isin(verdicts, PASSING)
    return rows, (failing, verdicts == "kink", ratio)


_new_row = tuple.__new__      # Row(...) without NamedTuple's keyword handling: 10x faster for large weights


def _shape_note(name: str, got: tuple, want: tuple, method: str, labels: Optional[dict]) -> str:
    label = (labels or TITLES).get(method, method)
    note = f"{label} gave a gradient of shape {got} for {name}, whose shape is {want}"
    lead = len(got) - len(want)
    if lead >= 0 and all(g == w or w == 1 for g, w in zip(got[lead:], want)):
        axes = tuple(range(lead)) + tuple(lead + i for i, (g, w) in enumerate(zip(got[lead:], want)) if g != w)
        note += f": the sum over the broadcast axes {axes} is missing"
    return note


def _json_number(value: Any) -> Optional[float]:
    return float(value) if value is not None and math.isfinite(value) else None


def _largest(errors: Any) -> float:
    finite = [e for e in errors if not math.isnan(e)]
    return max(finite) if finite else math.nan


def _num(value: Optional[float], digits: int) -> str:
    if value is None:
        return "—"
    if math.isnan(value):
        return "nan"
    return f"{value:.{digits}g}"


def _seconds(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
