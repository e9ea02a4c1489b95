"""Two peers of one engine case in one process, taking turns block by block: a steadier ratio.

``bench_engine.py`` times each peer in its own process, as a user would run it; on a
machine that other jobs share, those processes meet different loads and a ratio can move
by several per cent from run to run. Here the baseline and one peer run in the same
single-threaded process pinned to one CPU, alternating blocks of about 20 ms, so that
both meet the same moments; the figure is the median over blocks of (peer time /
baseline time), with its interquartile range. Both peers then share one process's caches
and allocator, so this complements the tables rather than replacing them.

Example::

    python bench/paired.py --case "mlp step b8"                  # symgrad against the NumPy floor
    python bench/paired.py --case "mlp step b128" --peer torch --blocks 300
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from harness import quietest_cpu, single_thread_env

BLOCK_SECONDS = 0.02


def block_timer(work, calls: int):
    """A function timing ``calls`` calls of ``work``: seconds per call.

    Example:
        >>> block_timer(lambda: None, 10)() < 1
        True
    """
    def seconds_per_call() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            work()
        return (time.perf_counter() - start) / calls
    return seconds_per_call


def paired_ratios(baseline, peer, blocks: int) -> list:
    """``blocks`` ratios of peer to baseline time per call, the two timed in turn, block after block.

    Example:
        >>> len(paired_ratios(lambda: None, lambda: None, 3))
        3
    """
    one_call = min(block_timer(baseline, 1)() for _ in range(3))
    calls = max(1, round(BLOCK_SECONDS / max(one_call, 1e-7)))
    time_baseline, time_peer = block_timer(baseline, calls), block_timer(peer, calls)
    for _ in range(max(3, blocks // 10)):        # warm-up
        time_baseline(), time_peer()
    return [time_peer() / time_baseline() for _ in range(blocks)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="mlp step b8", help='an engine case (default "mlp step b8")')
    parser.add_argument("--peer", default="symgrad", help="the peer compared with the NumPy floor (default symgrad)")
    parser.add_argument("--blocks", type=int, default=200, help="blocks per peer (default 200)")
    args = parser.parse_args()
    if os.environ.get("SYMGRAD_PAIRED_CHILD") != "1":     # one thread everywhere, set before NumPy loads
        env = dict(single_thread_env(), SYMGRAD_PAIRED_CHILD="1")
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    try:
        os.sched_setaffinity(0, {quietest_cpu(os.sched_getaffinity(0))})
    except (AttributeError, OSError):
        pass
    import bench_engine  # noqa: PLC0415  (after the environment is set)

    peers = bench_engine.CASES.get(args.case)
    if peers is None or args.peer not in peers:
        parser.error(f"no case {args.case!r} with a peer {args.peer!r}; cases: {', '.join(bench_engine.CASES)}")
    if args.blocks < 4:
        parser.error("--blocks must be at least 4")
    try:
        baseline, peer = peers["numpy"](), peers[args.peer]()
    except ImportError as err:
        sys.exit(f"{args.peer} is not installed ({err.name or err})")
    ratios = sorted(paired_ratios(baseline, peer, args.blocks))
    quartiles = statistics.quantiles(ratios, n=4)
    print(f"{args.case}: {args.peer} / numpy = {statistics.median(ratios):.3f}× "
          f"(interquartile {quartiles[0]:.3f}–{quartiles[2]:.3f}, {args.blocks} blocks each)")


if __name__ == "__main__":
    main()
