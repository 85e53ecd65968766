"""A small reverse-mode autograd on NumPy arrays: enough to build multi-head attention and a
Pre-LN Transformer block and differentiate them (seed 000 exercise 20).

A :class:`Tensor` holds an array (float64), and when it comes out of an operation, its parents
and a function that maps the gradient of the loss with respect to it to the gradients with
respect to each parent (the vector–Jacobian product). :meth:`Tensor.backward` visits the graph
in reverse topological order and adds each contribution into ``.grad`` (Baydin et al., 2018,
"Automatic differentiation in machine learning: a survey", Section 3.2). Every operation
broadcasts as NumPy does; its backward sums the gradient back over the broadcast axes.

The rules, for ``y = f(x)`` and ``g = ∂L/∂y``:

    matmul   Y = A B:           ∂A = g Bᵀ,  ∂B = Aᵀ g
    softmax  y = softmax(x):    ∂x = y ∘ (g − Σ g ∘ y)         (row by row)
    exp      y = eˣ:            ∂x = g ∘ y
    power    y = xᵖ:            ∂x = g ∘ p xᵖ⁻¹
    erf      y = erf(x):        ∂x = g ∘ 2/√π · e^(−x²)
    sum/mean over an axis:      the gradient spread back over it (÷ n for the mean)

Layer norm and GELU are composed from these operations, so their gradients follow from the
rules above rather than from formulas of their own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from .backward import _unbroadcast

_erf = np.vectorize(math.erf, otypes=[np.float64])


class Tensor:
    """An array and, when it is the result of an operation, how to send gradients back.

    Args:
        data: anything ``numpy.asarray`` takes; stored as float64.
        name: a label for messages (a parameter's name).

    ``grad`` is None until :meth:`backward` reaches the tensor; it then has ``data``'s shape.
    """

    __slots__ = ("_parents", "_vjp", "data", "grad", "name")

    def __init__(self, data, *, name: str = ""):
        array = np.asarray(data, dtype=np.float64)
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name or 'data'}: expected finite numbers, got NaN or inf")
        self.data = array
        self.grad: np.ndarray | None = None
        self.name = name
        self._parents: tuple[Tensor, ...] = ()
        self._vjp: Callable[[np.ndarray], tuple[np.ndarray, ...]] | None = None

    @classmethod
    def _result(cls, data, parents: tuple[Tensor, ...], vjp) -> Tensor:
        out = cls.__new__(cls)
        out.data, out.grad, out.name = np.asarray(data, dtype=np.float64), None, ""
        out._parents, out._vjp = parents, vjp
        return out

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"Tensor{label}(shape={self.shape})"

    # --- elementwise, broadcasting like NumPy ---------------------------------------------

    def __add__(self, other) -> Tensor:
        other = as_tensor(other)
        a, b = self.shape, other.shape
        return Tensor._result(
            self.data + other.data,
            (self, other),
            lambda g: (_unbroadcast(g, a), _unbroadcast(g, b)),
        )

    __radd__ = __add__

    def __neg__(self) -> Tensor:
        return Tensor._result(-self.data, (self,), lambda g: (-g,))

    def __sub__(self, other) -> Tensor:
        return self + (-as_tensor(other))

    def __rsub__(self, other) -> Tensor:
        return as_tensor(other) + (-self)

    def __mul__(self, other) -> Tensor:
        other = as_tensor(other)
        x, y = self.data, other.data
        return Tensor._result(
            x * y,
            (self, other),
            lambda g: (_unbroadcast(g * y, x.shape), _unbroadcast(g * x, y.shape)),
        )

    __rmul__ = __mul__

    def __truediv__(self, other) -> Tensor:
        return self * as_tensor(other) ** -1.0

    def __rtruediv__(self, other) -> Tensor:
        return as_tensor(other) * self**-1.0

    def __pow__(self, power: float) -> Tensor:
        if not isinstance(power, int | float) or isinstance(power, bool):
            raise TypeError(f"power: expected a number, got {type(power).__name__}")
        x = self.data
        return Tensor._result(x**power, (self,), lambda g: (g * power * x ** (power - 1),))

    def exp(self) -> Tensor:
        y = np.exp(self.data)
        return Tensor._result(y, (self,), lambda g: (g * y,))

    def erf(self) -> Tensor:
        x = self.data
        return Tensor._result(
            _erf(x), (self,), lambda g: (g * 2.0 / math.sqrt(math.pi) * np.exp(-(x**2)),)
        )

    # --- products, reductions and shapes ----------------------------------------------------

    def __matmul__(self, other) -> Tensor:
        other = as_tensor(other)
        a, b = self.data, other.data
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(
                f"matmul: expected operands of at least 2 dims, got {a.shape} and {b.shape}"
            )
        return Tensor._result(
            a @ b,
            (self, other),
            lambda g: (
                _unbroadcast(g @ np.swapaxes(b, -1, -2), a.shape),
                _unbroadcast(np.swapaxes(a, -1, -2) @ g, b.shape),
            ),
        )

    def sum(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        shape = self.shape

        def vjp(g):
            if axis is not None and not keepdims:
                g = np.expand_dims(g, axis)
            return (np.broadcast_to(g, shape).copy(),)

        return Tensor._result(self.data.sum(axis=axis, keepdims=keepdims), (self,), vjp)

    def mean(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        count = self.data.size if axis is None else self.shape[axis]
        return self.sum(axis, keepdims) * (1.0 / count)

    def reshape(self, *shape: int) -> Tensor:
        before = self.shape
        return Tensor._result(self.data.reshape(shape), (self,), lambda g: (g.reshape(before),))

    def swapaxes(self, a: int, b: int) -> Tensor:
        return Tensor._result(
            np.swapaxes(self.data, a, b), (self,), lambda g: (np.swapaxes(g, a, b),)
        )

    def masked_fill(self, mask, value: float) -> Tensor:
        """``value`` where ``mask`` is True (no gradient flows there), the tensor elsewhere."""
        mask = np.asarray(mask, dtype=bool)
        try:
            fits = np.broadcast_shapes(mask.shape, self.shape) == self.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"mask: expected a shape broadcasting to {self.shape}, got {mask.shape}"
            )
        return Tensor._result(
            np.where(mask, value, self.data), (self,), lambda g: (np.where(mask, 0.0, g),)
        )

    # --- the backward pass --------------------------------------------------------------

    def backward(self, grad=None) -> None:
        """Accumulate ∂L/∂t into ``t.grad`` for every tensor t this one was computed from.

        ``grad`` is ∂L/∂self (default 1, for a scalar loss). Gradients add up across calls, as
        in PyTorch; set ``.grad = None`` to start again.
        """
        if grad is None:
            if self.data.size != 1:
                raise ValueError(
                    f"grad: required for a non-scalar tensor of shape {self.shape} (∂L/∂self)"
                )
            grad = np.ones_like(self.data)
        grad = np.asarray(grad, dtype=np.float64)
        if grad.shape != self.shape:
            raise ValueError(f"grad: expected shape {self.shape}, got {grad.shape}")
        order, seen = [], set()

        def visit(node: Tensor) -> None:  # depth-first, iterative: graphs can be deep
            stack = [(node, False)]
            while stack:
                t, expanded = stack.pop()
                if expanded:
                    order.append(t)
                elif id(t) not in seen:
                    seen.add(id(t))
                    stack.append((t, True))
                    stack.extend((p, False) for p in t._parents if id(p) not in seen)

        visit(self)
        pending = {id(self): grad}
        for t in reversed(order):  # every consumer of t comes before t
            g = pending.pop(id(t), None)
            if g is None:
                continue
            t.grad = g.copy() if t.grad is None else t.grad + g
            if t._vjp is not None:
                for parent, parent_grad in zip(t._parents, t._vjp(g), strict=True):
                    key = id(parent)
                    pending[key] = parent_grad if key not in pending else pending[key] + parent_grad


def as_tensor(x) -> Tensor:
    """``x`` itself if it is a :class:`Tensor`, else a constant tensor of it."""
    return x if isinstance(x, Tensor) else Tensor(x)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Softmax along ``axis`` with its own backward rule ``y ∘ (g − Σ g ∘ y)``; a row that is
    all ``-inf`` (nothing to attend to) gives zeros and a zero gradient."""
    top = np.max(x.data, axis=axis, keepdims=True)
    e = np.exp(x.data - np.where(np.isfinite(top), top, 0.0))  # exp(-inf) = 0
    total = e.sum(axis=axis, keepdims=True)
    y = np.divide(e, total, out=np.zeros_like(e), where=total > 0)
    return Tensor._result(y, (x,), lambda g: (y * (g - np.sum(g * y, axis=axis, keepdims=True)),))


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x Wᵀ + b`` with PyTorch's layout: ``weight`` ``(out_features, in_features)``."""
    if weight.ndim != 2 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"weight: expected (out_features, {x.shape[-1]}), got {weight.shape}")
    out = x @ weight.swapaxes(0, 1)
    return out if bias is None else out + bias


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """``(x − mean) / √(var + eps) · weight + bias`` over the last axis (biased variance, as
    ``torch.nn.LayerNorm``); composed of primitive operations."""
    centred = x - x.mean(axis=-1, keepdims=True)
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    return centred * (variance + eps) ** -0.5 * weight + bias


def gelu(x: Tensor) -> Tensor:
    """Exact GELU, ``x · Φ(x) = x · (1 + erf(x / √2)) / 2`` (Hendrycks and Gimpel, 2016)."""
    return x * ((x * (1.0 / math.sqrt(2.0))).erf() + 1.0) * 0.5


def parameters(state: Mapping[str, object]) -> dict[str, Tensor]:
    """Tensors of a state dict's arrays (NumPy or torch, moved to float64 NumPy), by name."""
    out = {}
    for name, value in state.items():
        array = value.detach().cpu().double().numpy() if hasattr(value, "detach") else value
        out[name] = Tensor(array, name=name)
    return out


__all__ = ["Tensor", "as_tensor", "gelu", "layer_norm", "linear", "parameters", "softmax"]
