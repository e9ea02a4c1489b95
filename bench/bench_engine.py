"""Speed of symgrad's reverse-mode engine against a hand-written NumPy floor and its peers.

Cases (each peer in its own single-threaded process pinned to one CPU; see ``harness.py``):

- ``mlp step b128`` / ``mlp step b8``: one SGD training step of a 784-256-10 tanh MLP with
  softmax cross-entropy, float32, at batch 128 and 8;
- ``per-op 3000``: 1,000 times ``x = tanh(x*1.01 + 0.1)`` on 16 float64s, then sum and backward
  (the ``per_op_us`` column is the time divided by the 3,000 recorded ops);
- ``matmul 2048``: a 2048x2048 float32 matmul, forward and backward (a VJP with a given cotangent);
- ``chain 100k``: 100,000 chained ``tanh`` on 16 float64s, forward and backward (JAX left out:
  jitting a 100,000-op trace measures its compiler, and eagerly it takes minutes).

Every peer gets the same data and initial weights (:func:`mlp_data`, :func:`vector`, :func:`square`);
the ``check`` column is a figure every peer must agree on (the first step's loss, a gradient's sum).
The baseline ``numpy`` is the hand-written forward and backward: the floor for any NumPy-based engine.
The MLP cases also time ``symgrad (compiled)``: the same step by ``sg.value_and_grad(..., compile=True)``,
recorded once and replayed.

Example::

    python bench/bench_engine.py                      # every case and peer
    python bench/bench_engine.py --case "mlp step b8" --peer symgrad
"""
from __future__ import annotations

import numpy as np

from harness import main

LR = 0.1
PER_OP_STEPS = 1_000          # x = tanh(x*1.01 + 0.1): three recorded ops per step
CHAIN_LENGTH = 100_000
MATMUL_N = 2048


# --- shared data -----------------------------------------------------------------------------


def mlp_data(batch: int, hidden: int = 256) -> tuple:
    """The MLP's inputs, labels and initial weights (W1, b1, W2, b2), float32, the same for every peer.

    Example:
        >>> x, y, (w1, b1, w2, b2) = mlp_data(8)
        >>> x.shape, y.shape, w1.shape, w1.dtype
        ((8, 784), (8,), (784, 256), dtype('float32'))
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 784)).astype(np.float32)
    y = rng.integers(0, 10, size=batch)
    w1 = (rng.standard_normal((784, hidden)) / np.sqrt(784)).astype(np.float32)
    w2 = (rng.standard_normal((hidden, 10)) / np.sqrt(hidden)).astype(np.float32)
    return x, y, (w1, np.zeros(hidden, np.float32), w2, np.zeros(10, np.float32))


def vector() -> np.ndarray:
    """The 16 float64 inputs of the per-op and chain cases.

    Example:
        >>> vector().shape
        (16,)
    """
    return np.linspace(-1.0, 1.0, 16)


def square(n: int = MATMUL_N) -> tuple:
    """The matmul case's operands A, B and output cotangent G, float32 of shape (n, n).

    Example:
        >>> [m.dtype.name for m in square(4)]
        ['float32', 'float32', 'float32']
    """
    rng = np.random.default_rng(1)
    return tuple(rng.standard_normal((n, n), dtype=np.float32) for _ in range(3))


def checked(work, value=float, ops: int | None = None):
    """``work`` after one call, whose result (through ``value``) becomes the ``check`` column.

    ``ops`` (when given) is the number of recorded operations per call, for the ``per_op_us`` column.

    Example:
        >>> checked(lambda: 2.0).extra
        {'check': 2.0}
    """
    work.extra = {"check": value(work())}
    if ops:
        work.ops = ops
    return work


# --- MLP training step -------------------------------------------------------------------------


def numpy_mlp(batch: int, hidden: int = 256, xp=np):
    """One MLP step written by hand (forward, backward, SGD update) with the array module ``xp``: the floor.

    Example:
        >>> round(numpy_mlp(8).extra["check"], 4)      # the first step's loss, as for every peer
        2.4333
    """
    x, y, params = mlp_data(batch, hidden)
    x, y = xp.asarray(x), xp.asarray(y)
    w1, b1, w2, b2 = (xp.asarray(a) for a in params)
    rows = xp.arange(batch)

    def step():
        h = x @ w1
        h += b1
        xp.tanh(h, out=h)
        logits = h @ w2
        logits += b2
        shifted = logits - logits[rows, logits.argmax(axis=1)][:, None]   # the row max, as symgrad's own:
        e = xp.exp(shifted)                           # twice as fast as .max(axis=1) on 10 float32 columns
        total = e.sum(axis=1, keepdims=True)
        loss = (xp.log(total).sum() - shifted[rows, y].sum()) / batch
        d_logits = e / total                          # the softmax, then minus the one-hot labels
        d_logits[rows, y] -= 1
        d_logits *= 1 / batch
        d_h = d_logits @ w2.T
        d_h *= 1 - h * h
        for p, g in ((w2, h.T @ d_logits), (b2, d_logits.sum(axis=0)), (w1, x.T @ d_h), (b1, d_h.sum(axis=0))):
            p -= LR * g
        return loss

    return checked(step)


def symgrad_mlp(batch: int, hidden: int = 256, device: str = "cpu"):
    """One MLP step on symgrad's engine: ``sg.cross_entropy``, ``backward()``, SGD on ``.data``."""
    import symgrad as sg
    from symgrad.backend import to_device

    x, y, arrays = mlp_data(batch, hidden)
    x, y = to_device(x, device), to_device(y, device)
    params = [sg.tensor(a, requires_grad=True, device=device) for a in arrays]
    w1, b1, w2, b2 = params

    def step():
        loss = sg.cross_entropy(sg.tanh(x @ w1 + b1) @ w2 + b2, y)
        loss.backward()
        for p in params:
            p.data -= LR * p.grad
            p.grad = None
        return loss

    return checked(step)


def symgrad_compiled_mlp(batch: int, hidden: int = 256, device: str = "cpu"):
    """One MLP step by ``sg.value_and_grad(..., compile=True)``: recorded once, then replayed; SGD in place."""
    import symgrad as sg
    from symgrad.backend import to_device

    x, y, arrays = mlp_data(batch, hidden)
    x, y = to_device(x, device), to_device(y, device)
    params = [to_device(a, device) for a in arrays]
    loss_and_grads = sg.value_and_grad(lambda w1, b1, w2, b2: sg.cross_entropy(sg.tanh(x @ w1 + b1) @ w2 + b2, y),
                                       argnums=(0, 1, 2, 3), compile=True)

    def step():
        loss, grads = loss_and_grads(*params)
        for p, g in zip(params, grads):
            p -= LR * g
        return loss

    return checked(step)


def torch_mlp(batch: int, hidden: int = 256, device: str = "cpu"):
    """One MLP step in PyTorch, one CPU thread, on the CPU or ``device="cuda"``."""
    import torch

    torch.set_num_threads(1)
    x, y, arrays = mlp_data(batch, hidden)
    x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    params = [torch.from_numpy(a).to(device).requires_grad_() for a in arrays]
    w1, b1, w2, b2 = params

    def step():
        loss = torch.nn.functional.cross_entropy(torch.tanh(x @ w1 + b1) @ w2 + b2, y)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= LR * p.grad
                p.grad = None
        return loss.detach()

    return checked(step)


def autograd_mlp(batch: int):
    """One MLP step with HIPS autograd's ``value_and_grad``."""
    import autograd
    import autograd.numpy as anp
    from autograd.scipy.special import logsumexp

    x, y, params = mlp_data(batch)
    rows = np.arange(batch)

    def loss_of(params):
        w1, b1, w2, b2 = params
        logits = anp.dot(anp.tanh(anp.dot(x, w1) + b1), w2) + b2
        return anp.mean(logsumexp(logits, axis=1) - logits[rows, y])

    value_and_grad = autograd.value_and_grad(loss_of)

    def step():
        loss, grads = value_and_grad(params)
        for p, g in zip(params, grads):
            p -= LR * g
        return loss

    return checked(step)


def jax_mlp(batch: int, jit: bool, hidden: int = 256):
    """One MLP step in JAX: ``value_and_grad`` and the update, jitted (weights donated) or eager."""
    import jax
    import jax.numpy as jnp

    x, y, arrays = mlp_data(batch, hidden)
    x, y = jnp.asarray(x), jnp.asarray(y)
    state = {"params": [jnp.asarray(a) for a in arrays]}

    def loss_of(params):
        w1, b1, w2, b2 = params
        logits = jnp.tanh(x @ w1 + b1) @ w2 + b2
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))

    def update(params):
        loss, grads = jax.value_and_grad(loss_of)(params)
        return [p - LR * g for p, g in zip(params, grads)], loss

    if jit:
        update = jax.jit(update, donate_argnums=0)

    def step():
        state["params"], loss = update(state["params"])
        return jax.block_until_ready(loss)

    return checked(step)


# --- per-op overhead and the long chain ------------------------------------------------------------


def numpy_chain(steps: int, affine: bool, xp=np):
    """The chain of tanh written by hand with the array module ``xp``: forward keeping each output, then backward.

    ``affine`` makes each step ``tanh(x*1.01 + 0.1)`` (three ops) instead of ``tanh(x)``.

    Example:
        >>> numpy_chain(3, affine=False).ops
        3
    """
    x0 = xp.asarray(vector())
    scale = 1.01 if affine else 1.0
    shift = 0.1 if affine else 0.0

    def run():
        outs = []
        x = x0
        for _ in range(steps):
            x = xp.tanh(x * scale + shift) if affine else xp.tanh(x)
            outs.append(x)
        g = xp.ones_like(x)
        for out in reversed(outs):
            g = g * (1 - out * out)
            if affine:
                g = g * scale
        return g

    return checked(run, value=lambda g: float(g.sum()), ops=3 * steps if affine else steps)


def recorded_chain(tensor, tanh, steps: int, affine: bool, **device):
    """The chain of tanh recorded by an engine with PyTorch's interface (``tensor``, ``tanh``), then ``backward()``.

    ``device`` (``device="gpu"`` say) goes to ``tensor``.

    Example:
        >>> import symgrad as sg
        >>> round(recorded_chain(sg.tensor, sg.tanh, 2, affine=False).extra["check"], 3)
        9.866
    """
    x0 = vector()

    def run():
        x0t = tensor(x0, requires_grad=True, **device)
        x = x0t
        for _ in range(steps):
            x = tanh(x * 1.01 + 0.1) if affine else tanh(x)
        x.sum().backward()
        return x0t.grad

    return checked(run, value=lambda g: float(g.sum()), ops=3 * steps if affine else steps)


def symgrad_chain(steps: int, affine: bool, device: str = "cpu"):
    """The chain of tanh recorded by symgrad's engine, then ``backward()``."""
    import symgrad as sg

    return recorded_chain(sg.tensor, sg.tanh, steps, affine, device=device)


def torch_chain(steps: int, affine: bool, device: str = "cpu"):
    """The chain of tanh in PyTorch, then ``backward()``."""
    import torch

    torch.set_num_threads(1)
    return recorded_chain(torch.tensor, torch.tanh, steps, affine, device=device)


def _chain_function(tanh, total, steps: int, affine: bool):
    """The chain as a function of x, for the peers that differentiate functions."""
    def f(x):
        for _ in range(steps):
            x = tanh(x * 1.01 + 0.1) if affine else tanh(x)
        return total(x)

    return f


def autograd_chain(steps: int, affine: bool):
    """The chain of tanh through HIPS autograd's ``grad``."""
    import autograd
    import autograd.numpy as anp

    gradient = autograd.grad(_chain_function(anp.tanh, anp.sum, steps, affine))
    x0 = vector()
    return checked(lambda: gradient(x0), value=lambda g: float(g.sum()), ops=3 * steps if affine else steps)


def jax_chain(steps: int, affine: bool, jit: bool):
    """The chain of tanh through ``jax.grad`` (float64), jitted or eager."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)      # the chain runs in float64, as for every peer
    gradient = jax.grad(_chain_function(jnp.tanh, jnp.sum, steps, affine))
    if jit:
        gradient = jax.jit(gradient)
    x0 = jnp.asarray(vector())
    return checked(lambda: jax.block_until_ready(gradient(x0)), value=lambda g: float(g.sum()),
                   ops=3 * steps if affine else steps)


# --- matmul forward and backward ----------------------------------------------------------------------


def numpy_matmul(n: int = MATMUL_N, xp=np):
    """A @ B and its two gradients G @ B.T and A.T @ G, by hand with the array module ``xp``: the floor."""
    a, b, g = (xp.asarray(m) for m in square(n))

    def run():
        a @ b
        return g @ b.T, a.T @ g

    return checked(run, value=lambda grads: float(grads[0][0, :8].sum()))


def recorded_matmul(a, b, g):
    """``A @ B`` then ``backward(G)`` with tensors that record (symgrad's or PyTorch's), as one call.

    Example:
        >>> import symgrad as sg
        >>> a, b = sg.tensor([[1.0]], requires_grad=True), sg.tensor([[2.0]], requires_grad=True)
        >>> recorded_matmul(a, b, [[1.0]]).extra
        {'check': 2.0}
    """
    def run():
        a.grad = b.grad = None
        (a @ b).backward(g)
        return a.grad, b.grad

    return checked(run, value=lambda grads: float(grads[0][0, :8].sum()))


def symgrad_matmul(n: int = MATMUL_N, device: str = "cpu"):
    """A @ B on symgrad's engine, then ``backward(G)``."""
    import symgrad as sg
    from symgrad.backend import to_device

    a, b, g = (to_device(m, device) for m in square(n))
    return recorded_matmul(sg.tensor(a, requires_grad=True), sg.tensor(b, requires_grad=True), g)


def torch_matmul(n: int = MATMUL_N, device: str = "cpu"):
    """A @ B in PyTorch, then ``backward(G)``."""
    import torch

    torch.set_num_threads(1)
    a, b, g = (torch.from_numpy(m).to(device) for m in square(n))
    a.requires_grad_()
    b.requires_grad_()
    return recorded_matmul(a, b, g)


def autograd_matmul():
    """A @ B through HIPS autograd's ``make_vjp``, applied to G."""
    import autograd

    a, b, g = square()
    vjp_of = autograd.make_vjp(lambda ab: ab[0] @ ab[1])

    def run():
        vjp, _ = vjp_of((a, b))
        return vjp(g)

    return checked(run, value=lambda grads: float(grads[0][0, :8].sum()))


def jax_matmul(jit: bool, n: int = MATMUL_N):
    """A @ B through ``jax.vjp``, applied to G, jitted or eager."""
    import jax
    import jax.numpy as jnp

    a, b, g = (jnp.asarray(m) for m in square(n))

    def vjp(a, b, g):
        out, pullback = jax.vjp(jnp.matmul, a, b)
        return (*pullback(g), out)        # the product too, as every peer makes it: jit would drop it unused

    if jit:
        vjp = jax.jit(vjp)
    return checked(lambda: jax.block_until_ready(vjp(a, b, g)), value=lambda grads: float(grads[0][0, :8].sum()))


# --- the table --------------------------------------------------------------------------------------------


def _mlp_peers(batch: int) -> dict:
    return {
        "numpy": lambda: numpy_mlp(batch),
        "symgrad": lambda: symgrad_mlp(batch),
        "symgrad (compiled)": lambda: symgrad_compiled_mlp(batch),
        "torch": lambda: torch_mlp(batch),
        "autograd": lambda: autograd_mlp(batch),
        "jax (jit)": lambda: jax_mlp(batch, jit=True),
        "jax (no jit)": lambda: jax_mlp(batch, jit=False),
    }


def _chain_peers(steps: int, affine: bool, jax_peers: bool) -> dict:
    peers = {
        "numpy": lambda: numpy_chain(steps, affine),
        "symgrad": lambda: symgrad_chain(steps, affine),
        "torch": lambda: torch_chain(steps, affine),
        "autograd": lambda: autograd_chain(steps, affine),
        "jax (jit)": lambda: jax_chain(steps, affine, jit=True),
        "jax (no jit)": lambda: jax_chain(steps, affine, jit=False),
    }
    if not jax_peers:
        del peers["jax (jit)"], peers["jax (no jit)"]
    return peers


CASES = {
    "mlp step b128": _mlp_peers(128),
    "mlp step b8": _mlp_peers(8),
    "per-op 3000": _chain_peers(PER_OP_STEPS, affine=True, jax_peers=True),
    "matmul 2048": {
        "numpy": numpy_matmul,
        "symgrad": symgrad_matmul,
        "torch": torch_matmul,
        "autograd": autograd_matmul,
        "jax (jit)": lambda: jax_matmul(jit=True),
        "jax (no jit)": lambda: jax_matmul(jit=False),
    },
    # without JAX: see the module docstring
    "chain 100k": _chain_peers(CHAIN_LENGTH, affine=False, jax_peers=False),
}


if __name__ == "__main__":
    main(CASES, baseline="numpy", title="symgrad engine benchmark",
         columns=("per_op_us", "peak_rss_mib", "check"))
