"""The engine on the GPU (CuPy): the same values and gradients as on the CPU, data kept on the device.

Without CuPy and a CUDA GPU only the first test runs (asking for the GPU is a clear
error); the others are skipped.
"""
from __future__ import annotations

import operator
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import symgrad as sg
from symgrad import backend

GPU = backend.gpu_available()
needs_gpu = pytest.mark.skipif(not GPU, reason="needs CuPy and a CUDA GPU")
RNG = np.random.default_rng(11)


@pytest.mark.skipif(GPU, reason="CuPy and a GPU are available")
def test_asking_for_the_gpu_without_cupy_is_a_clear_error():
    for request in (lambda: sg.tensor([1.0], device="gpu"), lambda: sg.tensor([1.0]).to("gpu"),
                    lambda: backend.array_module("gpu")):
        with pytest.raises(RuntimeError, match=r"CuPy.*symgrad\[gpu\]"):
            request()


CASES = {  # name: (function, arguments as NumPy arrays; the float ones are differentiated)
    "elementwise": (lambda x: sg.tanh(x) * sg.sigmoid(x) + sg.exp(x * 0.1) - sg.log(sg.abs(x) + 1.0)
                    + sg.sqrt(x * x + 1.0) + sg.relu(x) + sg.sin(x) * sg.cos(x), [RNG.normal(size=(3, 4))]),
    "broadcasting": (lambda a, b: (a * b - a / (b * b + 1.0)) ** 2.0 + 2.0 ** a,
                     [RNG.normal(size=(3, 1)), RNG.normal(size=(1, 4))]),
    "matmul batched": (operator.matmul, [RNG.normal(size=(2, 3, 4)), RNG.normal(size=(4, 5))]),
    "matmul vector": (operator.matmul, [RNG.normal(size=(4,)), RNG.normal(size=(2, 4, 3))]),
    "reductions": (lambda x: x.sum(axis=0) + x.mean(axis=(0, 1), keepdims=True)[0] + x.max(axis=0),
                   [RNG.normal(size=(2, 3, 4))]),
    "shapes": (lambda x: x.reshape(4, 6).T.transpose(1, 0)[1:, ::2] * 1.0, [RNG.normal(size=(2, 3, 4))]),
    "repeated indices": (lambda x: x[np.array([0, 0, 2, 0])] * 2.0, [RNG.normal(size=(3, 2))]),
    "boolean mask": (lambda x: x[x > 0] * 1.5, [RNG.normal(size=(3, 4))]),
    "concatenate stack": (lambda a, b: sg.stack([sg.concatenate([a, b], axis=1), sg.concatenate([b, a], axis=1)]),
                          [RNG.normal(size=(2, 3)), RNG.normal(size=(2, 3))]),
    "maximum minimum where": (lambda a, b: sg.maximum(a, b) - sg.minimum(a, 0.1) + sg.where(a > b, a, b),
                              [RNG.normal(size=(3, 4)), RNG.normal(size=(4,))]),
    "softmax": (lambda x: sg.softmax(x * 1e4, axis=0) + sg.log_softmax(x), [RNG.normal(size=(3, 4))]),
    "cross entropy labels": (lambda z: sg.cross_entropy(z, np.array([0, 3, 3])), [RNG.normal(size=(3, 4))]),
    "cross entropy probabilities": (lambda z: sg.cross_entropy(z, np.full(z.shape, 0.25, z.dtype), reduction="none"),
                                    [RNG.normal(size=(3, 4))]),
    "mse": (lambda p, y: sg.mse_loss(p, y, reduction="sum"), [RNG.normal(size=(3, 4)), RNG.normal(size=(4,))]),
}


def gradients_on(device, fn, arrays, dtype):
    leaves = [sg.tensor(a.astype(dtype), requires_grad=True, device=device) for a in arrays]
    out = fn(*leaves)
    assert out.device == device and out.dtype == dtype
    out.backward(np.ones(out.shape))
    for leaf in leaves:
        assert leaf.grad is not None and leaf.grad.dtype == dtype
        assert backend.device_of(leaf.grad) == device
    return out.numpy(), [backend.to_device(leaf.grad, "cpu") for leaf in leaves]


@needs_gpu
@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gpu_values_and_gradients_equal_the_cpu_ones(name, dtype):
    fn, arrays = CASES[name]
    tolerance = 1e-10 if dtype == np.float64 else 2e-4
    cpu_value, cpu_grads = gradients_on("cpu", fn, arrays, dtype)
    gpu_value, gpu_grads = gradients_on("gpu", fn, arrays, dtype)
    np.testing.assert_allclose(gpu_value, cpu_value, rtol=tolerance, atol=tolerance)
    for gpu_grad, cpu_grad in zip(gpu_grads, cpu_grads):
        np.testing.assert_allclose(gpu_grad, cpu_grad, rtol=tolerance, atol=tolerance)


@needs_gpu
def test_gpu_tensor_round_trip_and_functions_on_cupy_arrays():
    cupy = backend.cupy_module()
    t = sg.tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3), device="gpu", requires_grad=True)
    assert t.device == "gpu" and isinstance(t.data, cupy.ndarray) and t.dtype == np.float32
    assert isinstance(t.numpy(), np.ndarray) and t.to("cpu").device == "cpu"
    out = sg.tanh(cupy.asarray(np.linspace(-1, 1, 5)))
    assert isinstance(out, cupy.ndarray)
    np.testing.assert_allclose(out.get(), np.tanh(np.linspace(-1, 1, 5)), rtol=1e-12)
    value, grad = sg.value_and_grad(lambda w: sg.sum(w * w))(t)
    assert backend.device_of(grad) == "gpu" and float(value) == float((np.arange(6.0) ** 2).sum())


@needs_gpu
def test_gpu_long_chain_and_mlp_step():
    x = sg.tensor(np.ones(16, dtype=np.float32), device="gpu", requires_grad=True)
    y = x
    for _ in range(1000):
        y = sg.tanh(y * 1.01 + 0.1)
    y.sum().backward()
    cpu = sg.tensor(np.ones(16, dtype=np.float32), requires_grad=True)
    z = cpu
    for _ in range(1000):
        z = sg.tanh(z * 1.01 + 0.1)
    z.sum().backward()
    np.testing.assert_allclose(backend.to_device(x.grad, "cpu"), cpu.grad, rtol=1e-4, atol=1e-6)


def test_cupy_arrays_are_recognised_once_cupy_is_imported_by_anyone(monkeypatch):
    """A CuPy array made by the user (CuPy imported elsewhere) is seen as GPU data."""
    fake_cupy = type(sys)("cupy")
    fake_cupy.ndarray = type("ndarray", (), {})
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    assert backend.xp_of(fake_cupy.ndarray()) is fake_cupy
    assert backend.device_of(fake_cupy.ndarray()) == "gpu"
    assert backend.xp_of(np.ones(2)) is np and backend.device_of(1.0) == "cpu"


@pytest.mark.parametrize("shape, index", [
    ((3,), np.array([0, 3])),
    ((3,), np.array([-4])),
    ((3,), np.array(3)),
    ((3, 4), (0, np.array(7))),
    ((3,), ((5, 0),)),
    ((3, 4), (slice(None), np.array([1, 4]))),
    ((3, 4), (Ellipsis, np.array([[0], [-5]]))),
    ((3, 4), (np.array([True, False]),)),
])
def test_an_index_out_of_range_is_numpys_index_error(shape, index):
    with pytest.raises(IndexError):
        backend.check_index(shape, index)
    with pytest.raises(IndexError):
        np.zeros(shape)[index]


@pytest.mark.parametrize("shape, index", [
    ((3,), np.array([0, -3, 2, 2])), ((3, 4), (slice(1, None), np.array([3, -4]))), ((3, 4), 2),
    ((3, 4), (np.array([True, False, True]), slice(None))), ((3, 4), (None, Ellipsis, np.array([0])))])
def test_an_index_in_range_passes(shape, index):
    backend.check_index(shape, index)
    assert np.zeros(shape)[index].size


_SMALL = st.integers(-6, 6)
_ARRAY_PARTS = st.one_of(                     # the parts CuPy would not bounds-check
    _SMALL.map(np.array),
    st.lists(_SMALL, max_size=3).map(lambda v: np.array(v, dtype=np.intp)),
    st.lists(st.booleans(), min_size=1, max_size=4).map(np.array),
    st.tuples(_SMALL, _SMALL),
)
_OTHER_PARTS = st.one_of(st.none(), st.just(Ellipsis), _SMALL,
                         st.builds(slice, st.none() | _SMALL, st.none() | _SMALL, st.sampled_from([None, 1, -1, 2])))


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
       parts=st.tuples(_ARRAY_PARTS, st.lists(_OTHER_PARTS | _ARRAY_PARTS, max_size=2)), position=st.integers(0, 2))
def test_check_index_refuses_exactly_what_numpy_refuses(shape, parts, position):
    """An index holding an array (what CuPy would wrap around) passes the check exactly when NumPy takes it."""
    first, rest = parts
    index = tuple(rest[:position]) + (first,) + tuple(rest[position:])
    try:
        np.zeros(shape)[index]
    except (IndexError, ValueError) as numpy_error:
        with pytest.raises(type(numpy_error)):
            backend.check_index(shape, index)
    else:
        backend.check_index(shape, index)


def test_extremes_of_an_array():
    values = RNG.integers(-50, 50, size=(4, 5))
    assert tuple(map(int, backend.extremes(values))) == (values.min(), values.max())


@needs_gpu
@pytest.mark.parametrize("make_index", [lambda cupy: cupy.array([1, 3]), lambda cupy: np.array([-4]),
                                        lambda cupy: cupy.array(3),
                                        lambda cupy: (slice(None), cupy.array([0, 2]))])
def test_gpu_index_out_of_range_raises_as_on_the_cpu(make_index):
    """CuPy itself would wrap these around; a Tensor raises NumPy's IndexError instead."""
    t = sg.tensor(np.arange(6.0).reshape(3, 2) if isinstance(make_index(np), tuple) else np.arange(3.0),
                  device="gpu", requires_grad=True)
    with pytest.raises(IndexError, match="out of bounds"):
        t[make_index(backend.cupy_module())]


@needs_gpu
@pytest.mark.parametrize("rows", [5, 70_000])          # labels copied to the host, or reduced on the GPU first
def test_gpu_cross_entropy_labels_out_of_range_are_refused(rows):
    cupy = backend.cupy_module()
    logits = sg.tensor(np.zeros((rows, 3), np.float32), device="gpu", requires_grad=True)
    labels = cupy.zeros(rows, dtype=cupy.int64)
    assert float(sg.cross_entropy(logits, labels)) == pytest.approx(np.log(3), rel=1e-6)
    labels[rows // 2] = 3
    with pytest.raises(ValueError, match=r"lie in \[0, 2\], got 0\.\.3"):
        sg.cross_entropy(logits, labels)
    labels[rows // 2] = -1
    with pytest.raises(ValueError, match=r"got -1\.\.0"):
        sg.cross_entropy(logits, labels)


@needs_gpu
def test_gpu_compiled_step_replays_the_eager_one_and_checks_its_labels():
    cupy = backend.cupy_module()
    rng = np.random.default_rng(0)
    params = [cupy.asarray(rng.standard_normal(s).astype(np.float32)) for s in ((4, 3), (3,), (3, 2), (2,))]
    x = cupy.asarray(rng.standard_normal((5, 4)).astype(np.float32))
    loss = lambda w1, b1, w2, b2, x, y: sg.cross_entropy(sg.tanh(x @ w1 + b1) @ w2 + b2, y)   # noqa: E731
    compiled = sg.value_and_grad(loss, argnums=(0, 1, 2, 3), compile=True)
    eager = sg.value_and_grad(loss, argnums=(0, 1, 2, 3))
    for labels in ([0, 1, 1, 0, 1], [1, 1, 0, 0, 0]):                # recorded, then replayed
        y = cupy.asarray(labels)
        (value, grads), (expected_value, expected) = compiled(*params, x, y), eager(*params, x, y)
        assert backend.device_of(grads[0]) == "gpu"
        np.testing.assert_allclose(float(value), float(expected_value), rtol=1e-6)
        for g, e in zip(grads, expected):
            np.testing.assert_allclose(backend.to_device(g, "cpu"), backend.to_device(e, "cpu"), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match=r"lie in \[0, 1\], got 0\.\.2"):
        compiled(*params, x, cupy.asarray([0, 1, 2, 0, 0]))
