"""symgrad's engine on the GPU (CuPy) against a hand-written CuPy floor, PyTorch (CUDA) and JAX (GPU).

The cases of ``bench_engine.py``, each call ending with the device synchronised, timed on the
wall clock (a GPU's work is not the process's CPU time):

- ``mlp step b128``: the CPU benchmark's 784-256-10 tanh MLP step, float32, batch 128: a few
  microseconds of GPU work per kernel, so what it measures is each engine's launch overhead;
- ``mlp step b8192 h4096``: the same step with 4,096 hidden units at batch 8,192 (about 107
  GFLOP): the GPU's arithmetic dominates;
- ``per-op 3000``: 1,000 times ``x = tanh(x*1.01 + 0.1)`` on 16 float64s, then sum and backward;
- ``matmul 8192``: an 8192x8192 float32 matmul, forward and backward (a VJP).

Every peer computes in float32 without TF32 (CuPy and PyTorch by default; JAX is told
``jax_default_matmul_precision="highest"``), so the ``check`` column agrees. A peer whose
library or GPU is missing is skipped and said so.

Example::

    python bench/bench_gpu.py                          # every case and peer, about 8 minutes
    python bench/bench_gpu.py --case "mlp step b128" --peer symgrad
"""
from __future__ import annotations

import os

from bench_engine import (PER_OP_STEPS, jax_matmul, jax_mlp, numpy_chain, numpy_matmul, numpy_mlp, symgrad_chain,
                          symgrad_matmul, symgrad_mlp, torch_chain, torch_matmul, torch_mlp)
from harness import main

BIG_MATMUL_N = 8192


def synchronised(work, sync):
    """``work``, made to wait for the device at the end of each call (its figures kept).

    Example:
        >>> calls = []
        >>> call = synchronised(lambda: calls.append("work"), lambda: calls.append("sync"))
        >>> call(), calls
        (None, ['work', 'sync'])
    """
    def call():
        result = work()
        sync()
        return result

    call.__dict__.update(work.__dict__)          # the ``extra`` and ``ops`` figures
    return call


def on_cupy(setup):
    """A setup run with CuPy, each call synchronised (ImportError, so skipped, without CuPy)."""
    def setup_with_cupy():
        import cupy

        cupy.cuda.runtime.getDeviceCount()
        return synchronised(setup(cupy), cupy.cuda.get_current_stream().synchronize)

    return setup_with_cupy


def on_cuda(setup):
    """A PyTorch setup run on ``device="cuda"``, each call synchronised (skipped without CUDA)."""
    def setup_with_cuda():
        import torch

        if not torch.cuda.is_available():
            raise ImportError("torch with CUDA")
        return synchronised(setup("cuda"), torch.cuda.synchronize)

    return setup_with_cuda


def on_jax_gpu(setup):
    """A JAX setup run on the GPU with float32 matmuls in full precision (its own calls wait for the result)."""
    def setup_with_jax_gpu():
        os.environ.pop("JAX_PLATFORMS", None)          # the harness keeps JAX on the CPU for the CPU tables
        import jax

        if jax.default_backend() != "gpu":
            raise ImportError("jax with CUDA")
        jax.config.update("jax_default_matmul_precision", "highest")
        return setup()

    return setup_with_jax_gpu


def _mlp_peers(batch: int, hidden: int) -> dict:
    return {
        "cupy": on_cupy(lambda cupy: numpy_mlp(batch, hidden, xp=cupy)),
        "symgrad": on_cupy(lambda cupy: symgrad_mlp(batch, hidden, device="gpu")),
        "torch": on_cuda(lambda device: torch_mlp(batch, hidden, device=device)),
        "jax (jit)": on_jax_gpu(lambda: jax_mlp(batch, jit=True, hidden=hidden)),
    }


CASES = {
    "mlp step b128": _mlp_peers(128, 256),
    "mlp step b8192 h4096": _mlp_peers(8192, 4096),
    "per-op 3000": {
        "cupy": on_cupy(lambda cupy: numpy_chain(PER_OP_STEPS, affine=True, xp=cupy)),
        "symgrad": on_cupy(lambda cupy: symgrad_chain(PER_OP_STEPS, affine=True, device="gpu")),
        "torch": on_cuda(lambda device: torch_chain(PER_OP_STEPS, affine=True, device=device)),
    },
    "matmul 8192": {
        "cupy": on_cupy(lambda cupy: numpy_matmul(BIG_MATMUL_N, xp=cupy)),
        "symgrad": on_cupy(lambda cupy: symgrad_matmul(BIG_MATMUL_N, device="gpu")),
        "torch": on_cuda(lambda device: torch_matmul(BIG_MATMUL_N, device=device)),
        "jax (jit)": on_jax_gpu(lambda: jax_matmul(jit=True, n=BIG_MATMUL_N)),
    },
}


if __name__ == "__main__":
    main(CASES, baseline="cupy", title="symgrad engine on the GPU", columns=("per_op_us", "check"), clock="wall")
