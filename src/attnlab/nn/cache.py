"""The key/value cache that makes decoding cost O(T) per token instead of O(T²).

During generation the keys and values of earlier tokens never change, so each layer keeps them
and a new token only computes its own. The cache is preallocated to a maximum length, so
appending writes into existing memory instead of concatenating.
"""

from __future__ import annotations

import torch

from attnlab.functional.validation import check_length


class LayerKVCache:
    """Keys ``(batch, n_kv_heads, max_len, head_dim)`` and values of one attention layer."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        self.keys = keys
        self.values = values
        self.length = 0

    @property
    def max_len(self) -> int:
        return self.keys.shape[2]

    def append(self, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``key``/``value`` ``(batch, n_kv_heads, seq_new, ·)`` after the cached ones.

        Returns:
            views of all keys and values so far, ``(batch, n_kv_heads, length, ·)``.
        """
        expected_k = (*self.keys.shape[:2], key.shape[2], self.keys.shape[3])
        expected_v = (*self.values.shape[:2], value.shape[2], self.values.shape[3])
        if tuple(key.shape) != expected_k or tuple(value.shape) != expected_v:
            raise ValueError(
                f"key/value: expected shapes {expected_k} and {expected_v} for this cache, got "
                f"{tuple(key.shape)} and {tuple(value.shape)}"
            )
        end = self.length + key.shape[2]
        if end > self.max_len:
            raise ValueError(
                f"cache: decoding past the maximum length {self.max_len} "
                f"({self.length} cached + {key.shape[2]} new); build a KVCache with a larger "
                "max_len or reset it"
            )
        self.keys[:, :, self.length : end] = key
        self.values[:, :, self.length : end] = value
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]

    def reset(self) -> None:
        self.length = 0


class KVCache:
    """Per-layer key/value caches for incremental decoding.

    Args:
        n_layers: number of attention layers.
        batch: sequences decoded side by side.
        n_kv_heads: key/value heads per layer (``n_heads`` for MHA, 1 for MQA, between for GQA).
        head_dim: width of one key head.
        max_len: longest sequence the cache can hold; memory is allocated up front.
        value_dim: width of one value head (default ``head_dim``).

    ``cache.layers[i]`` is the :class:`LayerKVCache` that layer i reads and extends. The memory is
    ``2 · n_layers · batch · n_kv_heads · max_len · head_dim · bytes(dtype)`` when
    ``value_dim == head_dim``: keys *and* values.
    """

    def __init__(
        self,
        n_layers: int,
        batch: int,
        n_kv_heads: int,
        head_dim: int,
        max_len: int,
        *,
        value_dim: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ):
        for name, value in (
            ("n_layers", n_layers),
            ("batch", batch),
            ("n_kv_heads", n_kv_heads),
            ("head_dim", head_dim),
            ("max_len", max_len),
        ):
            check_length(name, value)
        value_dim = head_dim if value_dim is None else check_length("value_dim", value_dim)
        self.layers = [
            LayerKVCache(
                torch.zeros(batch, n_kv_heads, max_len, head_dim, dtype=dtype, device=device),
                torch.zeros(batch, n_kv_heads, max_len, value_dim, dtype=dtype, device=device),
            )
            for _ in range(n_layers)
        ]

    def __getitem__(self, layer: int) -> LayerKVCache:
        return self.layers[layer]

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def length(self) -> int:
        """Tokens cached so far (the first layer's count; all layers agree after a forward)."""
        return self.layers[0].length

    def reset(self) -> None:
        """Forget every cached token; the memory is kept for the next sequence."""
        for layer in self.layers:
            layer.reset()

    def truncate(self, length: int) -> None:
        """Keep the first ``length`` cached tokens and forget the rest (a rejected guess in
        speculative decoding): the next forward writes from position ``length`` on."""
        if (
            isinstance(length, bool)
            or not isinstance(length, int)
            or not 0 <= length <= self.length
        ):
            raise ValueError(
                f"length: expected a whole number in [0, {self.length}], got {length!r}"
            )
        for layer in self.layers:
            layer.length = length

    @property
    def nbytes(self) -> int:
        """Bytes allocated for keys and values, measured from the tensors."""
        return sum(
            t.numel() * t.element_size()
            for layer in self.layers
            for t in (layer.keys, layer.values)
        )

    @property
    def used_bytes(self) -> int:
        """Bytes holding cached tokens so far."""
        return sum(
            (layer.keys[:, :, : layer.length].numel() + layer.values[:, :, : layer.length].numel())
            * layer.keys.element_size()
            for layer in self.layers
        )


class LayerLinearState:
    """The decoding cache of one linear-attention layer: running sums, not per-token keys.

    ``state`` is a :class:`attnlab.functional.linear.LinearAttentionState` (``None`` before the
    first token); its size does not grow with the length.
    """

    def __init__(self):
        self.state = None
        self.length = 0

    def reset(self) -> None:
        self.state, self.length = None, 0


class LinearStateCache:
    """Per-layer :class:`LayerLinearState` for models whose attention is linear; the same
    interface as :class:`KVCache` (``cache[i]``, ``length``, ``reset``, ``nbytes``)."""

    def __init__(self, n_layers: int):
        check_length("n_layers", n_layers)
        self.layers = [LayerLinearState() for _ in range(n_layers)]

    def __getitem__(self, layer: int) -> LayerLinearState:
        return self.layers[layer]

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def length(self) -> int:
        return self.layers[0].length

    def reset(self) -> None:
        for layer in self.layers:
            layer.reset()

    @property
    def nbytes(self) -> int:
        return sum(layer.state.nbytes for layer in self.layers if layer.state is not None)
