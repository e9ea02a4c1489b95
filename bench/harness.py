"""Shared benchmark machinery: each peer in its own single-threaded process, medians, ratios.

A benchmark script defines cases, each a mapping ``peer name -> setup function``.
A setup function imports its peer, builds the inputs, and returns a zero-argument
callable that does the work once (or raises ``ImportError`` when the peer is not
installed). The callable may carry ``.extra`` (a dict, or a zero-argument callable
returning one, of extra figures) and ``.ops`` (the number of operations one call
performs, which adds the figure ``per_op_us``). :func:`main` then runs every
(case, peer) pair in a fresh process pinned to one CPU (the idlest) with one thread,
``--rounds`` times taking turns with the other peers, keeps each peer's least
disturbed run, and prints one table of medians and ratios against the case's
baseline peer.

Example (a script ``bench/bench_x.py``)::

    from harness import main

    def numpy_sum():
        import numpy as np
        x = np.ones(1000)
        return lambda: x.sum()

    CASES = {"sum of 1000": {"numpy": numpy_sum}}

    if __name__ == "__main__":
        main(CASES, baseline="numpy")
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Mapping

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "XLA_FLAGS")


def single_thread_env() -> dict:
    """The environment for a timed child process: one thread everywhere."""
    env = dict(os.environ)
    for name in THREAD_VARIABLES[:-1]:
        env[name] = "1"
    env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    env["JAX_PLATFORMS"] = "cpu"
    env["MPLBACKEND"] = "Agg"
    return env


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def median_seconds(fn: Callable[[], Any], min_time: float = 0.5, warmup: int = 3, max_repeat: int = 1000,
                   clock: str = "wall") -> dict:
    """Median and spread of ``fn()`` run time after ``warmup`` calls.

    Repeats until ``min_time`` seconds have been spent (at least 5 times, at most ``max_repeat``).
    ``clock`` is "wall" (elapsed time) or "cpu" (this process's CPU time, all its threads:
    on a shared machine it leaves out the time other processes held the CPU).
    """
    now = CLOCKS[clock]
    for _ in range(warmup):
        fn()
    times = []
    spent = 0.0
    gc.collect()
    while (spent < min_time or len(times) < 5) and len(times) < max_repeat:
        start = now()
        fn()
        elapsed = now() - start
        times.append(elapsed)
        spent += elapsed
    return {"median": statistics.median(times), "min": min(times), "repeat": len(times)}


def peak_rss_mib() -> float:
    """Peak resident memory of this process, in MiB."""
    import resource  # noqa: PLC0415  (POSIX only)

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def quietest_cpu(cpus: set, interval: float = 0.1) -> int:
    """The CPU of ``cpus`` that was idle longest over the next ``interval`` seconds (Linux's
    /proc/stat), so that two benchmarks running at once do not share one CPU; else the first.

    Example:
        >>> quietest_cpu({0}, interval=0.0)
        0
    """
    def idle_ticks() -> dict:
        with open("/proc/stat") as stat:
            return {int(f[0][3:]): int(f[4]) for f in map(str.split, stat) if f[0][3:].isdigit()}

    try:
        before = idle_ticks()
        time.sleep(interval)
        after = idle_ticks()
    except (OSError, ValueError, IndexError):
        return min(cpus)
    return max(sorted(cpus), key=lambda cpu: after.get(cpu, 0) - before.get(cpu, 0))


def _child(script: str, case: str, peer: str, min_time: float, clock: str = "wall") -> None:
    """Run one (case, peer) in this process and print its figures as JSON."""
    try:
        os.sched_setaffinity(0, {quietest_cpu(os.sched_getaffinity(0))})
    except (AttributeError, OSError):
        pass
    module = _load(script)
    try:
        work = module.CASES[case][peer]()
    except ImportError as err:
        print(json.dumps({"skipped": f"not installed ({err.name or err})"}))
        return
    result = median_seconds(work, min_time=min_time, clock=clock)
    extra = getattr(work, "extra", None)
    if extra:
        result.update(extra() if callable(extra) else extra)
    ops = getattr(work, "ops", None)
    if ops:
        result["per_op_us"] = result["median"] / ops * 1e6
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result))


def _load(script: str):
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location("bench_script", script)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    spec.loader.exec_module(module)
    return module


def run_case(script: str, case: str, peer: str, min_time: float, clock: str = "wall") -> dict:
    """Run one (case, peer) in a fresh single-threaded process; return its figures."""
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", script, case, peer, str(min_time), clock],
        capture_output=True, text=True, env=single_thread_env(),
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"skipped": f"failed: {tail}"}
    return json.loads(lines[-1])


def _format_seconds(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.3f} s"


def main(cases: Mapping[str, Mapping[str, Callable]], baseline: str, title: str = "",
         columns: tuple = (), clock: str = "cpu") -> list:
    """Command-line entry of a benchmark script: run every case and peer, print a Markdown table.

    ``columns`` names extra figures a peer reports through its ``extra`` attribute
    (say ``max_error``); they are printed after the time. ``clock`` is the default of
    ``--clock`` ("wall" where the work runs on a GPU). Returns the rows.
    """
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(*sys.argv[2:5], float(sys.argv[5]), *sys.argv[6:7])
        return []
    parser = argparse.ArgumentParser(description=title or "symgrad benchmark")
    parser.add_argument("--case", action="append", help="run only this case (repeatable)")
    parser.add_argument("--peer", action="append", help="run only this peer (repeatable)")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds of timed runs per peer (default 1)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="processes per peer, interleaved with the other peers' (default 3); the one with "
                             "the lowest median is kept, so that a burst of load on the machine skews no ratio")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default=clock,
                        help=f"cpu: each process's CPU time (steadier on a machine others use too), "
                             f"wall: elapsed time (default: {clock})")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    _check_names(parser, "case", args.case, cases)
    _check_names(parser, "peer", args.peer, {peer for peers in cases.values() for peer in peers})
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    script = os.path.abspath(sys.modules["__main__"].__file__)
    print(f"# {title or os.path.basename(script)}")
    print(f"python {platform.python_version()}, {platform.machine()}, one thread per peer, "
          f"pinned to one CPU, {args.clock} time, median of >= 5 runs after warm-up, best of {args.rounds} processes\n")
    header = "| case | peer | median | ratio to " + baseline + " |" + "".join(f" {c} |" for c in columns)
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    rows = []
    for case, peers in cases.items():
        if args.case and case not in args.case:
            continue
        chosen = [peer for peer in peers if not args.peer or peer in args.peer or peer == baseline]
        figures = {}
        for _ in range(args.rounds):
            for peer in chosen:
                if "skipped" in figures.get(peer, {}):
                    continue
                fig = run_case(script, case, peer, args.min_time, args.clock)
                if peer not in figures or ("skipped" not in fig and fig["median"] < figures[peer]["median"]):
                    figures[peer] = fig
        base = figures.get(baseline, {}).get("median")
        for peer, fig in figures.items():
            row = {"case": case, "peer": peer, **fig}
            rows.append(row)
            if "skipped" in fig:
                print(f"| {case} | {peer} | skipped: {fig['skipped']} | |" + " |" * len(columns))
                continue
            ratio = f"{fig['median'] / base:.2f}×" if base else "n/a"
            extra = "".join(f" {_format_extra(fig.get(c))} |" for c in columns)
            print(f"| {case} | {peer} | {_format_seconds(fig['median'])} | {ratio} |{extra}")
    if args.json:                  # a script with several tables writes the rows of all of them
        _WRITTEN.extend(rows)
        with open(args.json, "w") as out:
            json.dump(_WRITTEN, out, indent=2)
    return rows


def _check_names(parser: argparse.ArgumentParser, kind: str, asked: list | None, known) -> None:
    """Stop with a usage error when ``--case``/``--peer`` names something the script does not have."""
    unknown = sorted(set(asked or ()) - set(known))
    if unknown:
        parser.error(f"unknown {kind} {', '.join(map(repr, unknown))}; known: {', '.join(map(repr, known))}")


_WRITTEN: list = []


def _format_extra(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


if __name__ == "__main__":
    _child(*sys.argv[2:5], float(sys.argv[5]), *sys.argv[6:7])
