"""Similarity kernels for attention and the feature maps that turn them into dot products.

Attention is a weighted average with weights ``sim(q, k_j) / Σ_j sim(q, k_j)`` (seed 003
problem 6). When ``sim(q, k) = φ(q)ᵀφ(k)`` for a feature map ``φ`` into ``r`` dimensions, the
sums over keys can be taken once and shared by every query, which makes attention linear in the
sequence length (Katharopoulos et al., 2020, "Transformers are RNNs", Section 3.2). Here:

- kernels for the quadratic reference :func:`attnlab.functional.linear.kernel_attention`:
  ``"softmax"`` (``exp(qᵀk/√d)``), :class:`PolynomialKernel` ``(qᵀk + c)^p``, any feature map
  (``φ(q)ᵀφ(k)``) or a callable;
- feature maps for :func:`attnlab.functional.linear.linear_attention`: ``"elu"`` (elu + 1, the
  paper's choice), ``"relu"``, ``"poly2"`` (exact degree-2 polynomial kernel) and ``"favor+"``
  (Performer's positive orthogonal random features for softmax; Choromanski et al., 2021).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F


class FeatureMap:
    """A map ``φ`` from ``(..., seq, d)`` to ``(..., seq, output_dim(d))``.

    ``φ(x)`` is the map of the paper. :meth:`query_features` may scale each query row by a
    positive factor of its choosing (a factor that cancels between the numerator and the
    normaliser of attention), which FAVOR+ uses to keep its exponentials in range.
    """

    name = "feature map"
    # Why a normaliser may vanish, for the error raised when one does.
    positivity = ""

    def output_dim(self, d: int) -> int:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def query_features(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)

    def features(self, x: torch.Tensor, *, query: bool = False, scratch=None, slot: str = ""):
        """:meth:`query_features` (``query``) or ``φ(x)``. ``scratch``, when given, is a source
        of reusable buffers (``scratch.get(name, shape)``, names starting with ``slot``) that a
        map may compute into instead of allocating; the result may then be such a buffer."""
        return self.query_features(x) if query else self(x)

    def __repr__(self) -> str:
        return f"feature_map({self.name!r})"


class EluFeatureMap(FeatureMap):
    """``φ(x) = elu(x) + 1``, positive everywhere; ``r = d``.

    Katharopoulos et al., 2020, Section 3.2.1.
    """

    name = "elu"
    positivity = "elu + 1 is positive, so only features that underflow to 0 can cause this"

    def output_dim(self, d: int) -> int:
        return d

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # elu(x) + 1 = exp(min(x, 0)) + max(x, 0): one exp and cheap passes, measured 1.2–1.6×
        # faster here than F.elu, whose expm1 is slower than exp. The gradient is the same:
        # exp(x) below 0, 1 above, and 1 at 0 (relu passes 0 there, clamp_max 1).
        low = x.clamp_max(0.0).exp_()  # in place: clamp_max's backward does not need it
        if torch.is_grad_enabled() and x.requires_grad:
            return low + x.relu()  # exp_'s backward reads its output: no in-place add
        return low.add_(x.relu())

    def features(self, x: torch.Tensor, *, query: bool = False, scratch=None, slot: str = ""):
        if scratch is None:
            return self(x)
        out, positive = scratch.get(slot + "φ", x.shape), scratch.get(slot + "+", x.shape)
        torch.clamp_max(x, 0.0, out=out)  # min(x, 0)
        torch.sub(x, out, out=positive)  # max(x, 0) = x − min(x, 0), exactly
        return out.exp_().add_(positive)


class ReluFeatureMap(FeatureMap):
    """``φ(x) = relu(x)``: non-negative but zero for a whole negative orthant; ``r = d``."""

    name = "relu"
    positivity = (
        "relu features are zero for a query (or keys) with no positive coordinate, so its "
        "similarity to every key is 0 and its output would be 0/0; use a strictly positive "
        "map ('elu', 'favor+') or inputs with positive coordinates"
    )

    def output_dim(self, d: int) -> int:
        return d

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x)


class Poly2FeatureMap(FeatureMap):
    """The explicit degree-2 map whose inner product is exactly ``(qᵀk + c)²``.

    ``φ(x) = [c, √(2c)·x_i, x_i², √2·x_i·x_j (i < j)]`` in ``r = 1 + d + d(d+1)/2`` dimensions
    (seed 003 problem 6). It is the map ``[y_a², √2·y_a·y_b (a < b)]`` of ``y = [√c, x]``,
    because ``yᵀy' = c + xᵀx'``; that is how it is computed, one outer product and one gather.
    """

    name = "poly2"
    positivity = (
        "(qᵀk + c)² is zero where qᵀk = −c, so a query whose similarities all vanish has a zero "
        "normaliser"
    )

    def __init__(self, c: float = 1.0):
        if isinstance(c, bool) or not isinstance(c, int | float) or not (c >= 0 and c < math.inf):
            raise ValueError(f"c: expected a finite number ≥ 0, got {c!r}")
        self.c = float(c)
        self._index: dict[tuple[int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    def output_dim(self, d: int) -> int:
        return 1 + d + d * (d + 1) // 2

    def _pairs(self, d: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat indices of the upper triangle ``a ≤ b`` of ``(d+1)²`` and their weights 1 or √2."""
        key = (d, torch.device(device))
        if key not in self._index:
            a, b = torch.triu_indices(d + 1, d + 1, device=device)  # row-major: c, x, then x²…
            weight = torch.full(a.shape, math.sqrt(2.0), dtype=torch.float64, device=device)
            weight[a == b] = 1.0
            self._index[key] = (a * (d + 1) + b, weight)
        return self._index[key]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        index, weight = self._pairs(x.shape[-1], x.device)
        y = F.pad(x, (1, 0), value=math.sqrt(self.c))  # (..., seq, d + 1)
        outer = y.unsqueeze(-1) * y.unsqueeze(-2)  # (..., seq, d + 1, d + 1)
        return outer.flatten(-2)[..., index] * weight.to(x.dtype)  # (..., seq, r)

    def __repr__(self) -> str:
        return f"feature_map('poly2', c={self.c})"


def _orthogonal_gaussian(d: int, r: int, orthogonal: bool, generator) -> torch.Tensor:
    """``(d, r)`` projection whose columns are marginally N(0, I_d) (Choromanski et al., 2021).

    With ``orthogonal``, blocks of ``d`` columns are exactly orthogonal: a Haar-random
    orthogonal matrix (QR of a Gaussian matrix with the signs of R's diagonal folded in; Mezzadri,
    2007) whose columns are rescaled to chi(d)-distributed norms, the norms Gaussian columns
    would have. Orthogonality lowers the estimator's variance (their Section 2.4).
    """
    if not orthogonal:
        return torch.randn(d, r, generator=generator, dtype=torch.float64)
    blocks = []
    for _ in range(-(-r // d)):
        q, rr = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
        blocks.append(q * torch.sign(torch.diagonal(rr)))
    directions = torch.cat(blocks, dim=1)[:, :r]  # unit columns, orthogonal within a block
    norms = torch.randn(d, r, generator=generator, dtype=torch.float64).norm(dim=0)  # chi(d)
    return directions * norms


class FavorPlusFeatureMap(FeatureMap):
    """FAVOR+: positive random features whose inner products estimate ``exp(qᵀk/√d)``.

    ``φ(x) = exp(ωᵀx − ‖x‖²/2) / √r`` with ``x = q / d^{1/4}`` and the ``r`` columns of ``ω``
    drawn as in :func:`_orthogonal_gaussian` (Choromanski et al., 2021, Lemma 1 and Section 2.4):
    ``E[φ(q)ᵀφ(k)] = exp(qᵀk/√d)``, the softmax kernel. The error falls like 1/√r once r is
    large against the estimator's variance, which grows like exp(‖q + k‖²/√d) (their Lemma 2):
    measured at d = 64, slope −0.5 for scores of std 0.06, but −0.06 for scores of std 1.
    Queries drop their ``‖x‖²/2`` term and subtract their largest ``ωᵀx`` (per-query factors
    that cancel in the ratio), so their features lie in (0, 1/√r]. Keys keep the formula as it
    stands, so that the parallel, chunked and token-by-token forms sum the same terms;
    ``ωᵀx − ‖x‖²/2 ≤ ‖ω‖²/2`` bounds them above, and only keys far longer than the queries can
    underflow every feature (reported as a vanishing normaliser, not divided by).

    Args:
        n_features: ``r``, the number of random features.
        head_dim: draw ``ω`` now for this ``d``; default: at the first call, from its input.
        orthogonal: orthogonal random features (True) or i.i.d. Gaussian ones.
        seed, generator: the random source (a generator takes precedence; neither: seed 0);
            ``redraw()`` draws the next ``ω`` from it, so a seed fixes the sequence of draws.
        dtype: dtype in which ``ω`` is kept; it is cast to the computation's dtype on use.

    ``omega`` is a plain ``(head_dim, n_features)`` tensor. A module keeps it as a buffer by
    registering this very tensor (``register_buffer("omega", fm.omega)``) and assigning the
    buffer back (``fm.omega = self.omega``) before use, since ``.to()`` or loading a state dict
    replace it; :meth:`redraw` writes in place, so a bound buffer follows.
    """

    name = "favor+"
    positivity = (
        "FAVOR+ features are positive but underflow to 0 for keys whose ‖k‖²/(2√d) exceeds "
        "their projections by ~87 (float32) or ~745 (float64); scale the keys down"
    )

    def __init__(
        self,
        n_features: int = 256,
        *,
        head_dim: int | None = None,
        orthogonal: bool = True,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        for name, n in (("n_features", n_features), ("head_dim", head_dim)):
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
                raise ValueError(f"{name}: expected a positive integer, got {n!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(
                f"generator: expected a torch.Generator, got {type(generator).__name__}"
            )
        if generator is None:
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                raise TypeError(f"seed: expected an integer or None, got {seed!r}")
            generator = torch.Generator().manual_seed(0 if seed is None else seed)
        self.n_features, self.orthogonal, self.dtype = n_features, bool(orthogonal), dtype
        self.generator = generator
        self.omega: torch.Tensor | None = None
        if head_dim is not None:
            self.redraw(head_dim)

    def output_dim(self, d: int) -> int:
        return self.n_features

    def redraw(self, head_dim: int | None = None) -> FavorPlusFeatureMap:
        """Draw a new ``ω`` from the generator (in place when one of that shape exists)."""
        d = head_dim if head_dim is not None else (None if self.omega is None else len(self.omega))
        if d is None:
            raise ValueError("head_dim: unknown until the first call; pass it to redraw()")
        omega = _orthogonal_gaussian(d, self.n_features, self.orthogonal, self.generator)
        if self.omega is not None and self.omega.shape == omega.shape:
            with torch.no_grad():
                self.omega.copy_(omega)
        else:
            self.omega = omega.to(self.dtype)
        return self

    def _projection(self, x: torch.Tensor) -> torch.Tensor:
        d = x.shape[-1]
        if self.omega is None:
            self.redraw(d)
        if self.omega.shape[0] != d:
            raise ValueError(
                f"head_dim: this FAVOR+ map was drawn for head_dim {self.omega.shape[0]}, got "
                f"inputs with head_dim {d}"
            )
        # x = q / d^{1/4} folded into ω: a (d, r) product instead of a pass over the inputs.
        return x @ (self.omega.to(x.device, x.dtype) * d**-0.25)  # (..., seq, r)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        projection = self._projection(x)
        half_sq = torch.linalg.vector_norm(x, dim=-1, keepdim=True).square() * (
            0.5 * x.shape[-1] ** -0.5
        )
        # 1/√r enters as −log √r in the exponent: one pass fewer than a multiplication after.
        return torch.exp(projection.sub_(half_sq + 0.5 * math.log(self.n_features)))

    def query_features(self, x: torch.Tensor) -> torch.Tensor:
        projection = self._projection(x)
        shift = projection.detach().amax(dim=-1, keepdim=True) + 0.5 * math.log(self.n_features)
        return torch.exp(projection.sub_(shift))

    def __repr__(self) -> str:
        return f"feature_map('favor+', n_features={self.n_features}, orthogonal={self.orthogonal})"


FEATURE_MAPS: dict[str, type[FeatureMap]] = {
    "elu": EluFeatureMap,
    "relu": ReluFeatureMap,
    "poly2": Poly2FeatureMap,
    "favor+": FavorPlusFeatureMap,
}


def feature_map(name: str | FeatureMap, **options) -> FeatureMap:
    """Build a feature map by name: ``"elu"``, ``"relu"``, ``"poly2"`` (``c=1.0``) or
    ``"favor+"`` (``n_features=256, head_dim=None, orthogonal=True, seed=None, generator=None``).

    A :class:`FeatureMap` passes through unchanged (without options). Unknown names raise a
    ``ValueError`` that lists the known ones; unknown options a ``TypeError``.
    """
    if isinstance(name, FeatureMap):
        if options:
            raise TypeError(f"options: a built {name!r} takes none, got {sorted(options)}")
        return name
    if not isinstance(name, str):
        raise TypeError(f"feature_map: expected a name or a FeatureMap, got {type(name).__name__}")
    if name not in FEATURE_MAPS:
        raise ValueError(f"feature_map: unknown name {name!r}; known: {', '.join(FEATURE_MAPS)}")
    try:
        return FEATURE_MAPS[name](**options)
    except TypeError as e:
        raise TypeError(
            f"feature_map({name!r}): options {sorted(options)} not accepted: {e}"
        ) from None


class Kernel:
    """A similarity ``sim(q, k)`` for :func:`~attnlab.functional.linear.kernel_attention`."""

    name = "kernel"
    positivity = ""

    def __call__(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """``(..., seq_q, d)``, ``(..., seq_k, d)`` → the ``(..., seq_q, seq_k)`` similarities."""
        raise NotImplementedError

    def row_scaled(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """The similarities, each query row scaled by a positive factor (cancels in attention)."""
        return self(query, key)


class SoftmaxKernel(Kernel):
    """``exp(qᵀk · scale)``, default ``scale = 1/√d``: softmax attention (Vaswani et al., 2017)."""

    name = "softmax"

    def __init__(self, scale: float | None = None):
        self.scale = scale

    def _scores(self, query, key):
        scale = query.shape[-1] ** -0.5 if self.scale is None else self.scale
        return (query @ key.transpose(-2, -1)) * scale

    def __call__(self, query, key):
        return torch.exp(self._scores(query, key))

    def row_scaled(self, query, key):
        scores = self._scores(query, key)  # minus the row maximum: the softmax's own shift
        if scores.shape[-1] == 0:
            return scores
        return torch.exp(scores - scores.detach().amax(dim=-1, keepdim=True))


class PolynomialKernel(Kernel):
    """``(qᵀk + c)^degree`` (seed 003 problem 6); ``degree=2`` equals the ``"poly2"`` map's."""

    name = "poly"
    positivity = "an odd degree gives negative similarities; (qᵀk + c)^p vanishes at qᵀk = −c"

    def __init__(self, c: float = 1.0, degree: int = 2):
        if isinstance(c, bool) or not isinstance(c, int | float) or not math.isfinite(c):
            raise ValueError(f"c: expected a finite number, got {c!r}")
        if isinstance(degree, bool) or not isinstance(degree, int) or degree < 1:
            raise ValueError(f"degree: expected a positive integer, got {degree!r}")
        self.c, self.degree = float(c), degree

    def __call__(self, query, key):
        return (query @ key.transpose(-2, -1) + self.c) ** self.degree


class FeatureMapKernel(Kernel):
    """``φ(q)ᵀφ(k)`` for a feature map: the quadratic form of linear attention."""

    def __init__(self, feature_map: FeatureMap):
        self.feature_map = feature_map
        self.name, self.positivity = feature_map.name, feature_map.positivity

    def __call__(self, query, key):
        return self.feature_map(query) @ self.feature_map(key).transpose(-2, -1)

    def row_scaled(self, query, key):
        return self.feature_map.query_features(query) @ self.feature_map(key).transpose(-2, -1)


class CallableKernel(Kernel):
    """Wraps a function ``sim(query, key) -> (..., seq_q, seq_k)``."""

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
        self.fn = fn
        self.name = getattr(fn, "__name__", "callable")

    def __call__(self, query, key):
        return self.fn(query, key)


KERNELS = ("softmax", "poly", *FEATURE_MAPS)


def kernel(spec) -> Kernel:
    """A :class:`Kernel` from ``"softmax"``, ``"poly"``, ``("poly", c, degree)``, a feature-map
    name or object, a :class:`Kernel`, or a callable ``sim(query, key)``."""
    if isinstance(spec, Kernel):
        return spec
    if isinstance(spec, FeatureMap):
        return FeatureMapKernel(spec)
    if isinstance(spec, tuple) and spec and spec[0] == "poly":
        return PolynomialKernel(*spec[1:])
    if isinstance(spec, str):
        if spec == "softmax":
            return SoftmaxKernel()
        if spec == "poly":
            return PolynomialKernel()
        if spec in FEATURE_MAPS:
            return FeatureMapKernel(feature_map(spec))
        raise ValueError(
            f"kernel: unknown name {spec!r}; known: {', '.join(KERNELS)}, ('poly', c, degree), "
            "a FeatureMap or a callable"
        )
    if callable(spec):
        return CallableKernel(spec)
    raise TypeError(
        f"kernel: expected a name, ('poly', c, degree), a FeatureMap, a Kernel or a callable, "
        f"got {type(spec).__name__}"
    )


__all__ = [
    "FEATURE_MAPS",
    "KERNELS",
    "CallableKernel",
    "EluFeatureMap",
    "FavorPlusFeatureMap",
    "FeatureMap",
    "FeatureMapKernel",
    "Kernel",
    "Poly2FeatureMap",
    "PolynomialKernel",
    "ReluFeatureMap",
    "SoftmaxKernel",
    "feature_map",
    "kernel",
]
