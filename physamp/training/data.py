"""A batch order that survives a restart: the same batches, in the same order, after a resume.

Two pieces:

:class:`BatchOrder`
    The order itself. Epoch ``e`` visits the ``n`` examples in the permutation
    ``torch.randperm(n, generator=Generator().manual_seed(derive_seed(seed, "data-order", e)))``
    (or ``0..n-1`` with ``shuffle=False``), cut into batches of ``batch_size`` (the
    last, shorter one dropped with ``drop_last=True``). It is a pure function of
    ``(seed, epoch)``: nothing to save. Give it to a ``DataLoader`` as
    ``batch_sampler=`` (it yields lists of indices for the epoch set by
    :meth:`~BatchOrder.set_epoch`), or ask it for index tensors directly
    (:meth:`~BatchOrder.indices`) when the data is one tensor on the device.

:class:`ResumableLoader`
    Batches forever, epoch after epoch, from a ``DataLoader`` over a dataset (or by
    indexing tensors directly, :meth:`~ResumableLoader.from_tensors`). ``next(loader)``
    gives the next batch; its position (epoch, batches consumed in that epoch) is its
    ``state_dict()``. Put it in :class:`~physamp.training.TrainLoop`'s ``state`` and a
    shuffled DataLoader resumes exactly where the checkpoint was taken::

        batches = ResumableLoader(dataset, batch_size=64, seed=cfg.seed, num_workers=2)
        state = {"encoder": enc, ..., "data": batches}

        def step_fn(step):
            x, y = next(batches)
            ...

The position is counted when a batch is *consumed* (returned by ``next``), not when
the sampler hands its indices out: DataLoader workers prefetch indices, so a
sampler-side counter would run ahead of the training. On ``load_state_dict`` the
DataLoader iterator is rebuilt starting at the saved batch, so the skipped batches
are never loaded.

The DataLoader gets a generator of its own (seeded from ``(seed, "data-loader",
epoch, batch)`` each time an iterator starts): without one, every new DataLoader
iterator draws its workers' base seed from torch's global generator, and a resumed
run, which starts one more iterator than an uninterrupted run, would shift the
global stream (and so dropout masks and any other draw from it). Randomness *inside*
the dataset (random augmentations in worker processes) is not part of the resumable
state: derive it from the example index if it must resume exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from physamp.seeding import check_seed, derive_seed

__all__ = ["BatchOrder", "ResumableLoader"]

_LOADER_OWNED = ("batch_size", "shuffle", "sampler", "batch_sampler", "drop_last", "generator")


class BatchOrder:
    """The batches of every epoch of ``n`` examples: a pure function of ``(seed, epoch)``.

    Args:
        n: number of examples.
        batch_size: examples per batch.
        seed: the run's seed; epoch ``e`` is shuffled by ``derive_seed(seed, "data-order", e)``.
        shuffle: ``False`` visits ``0..n-1`` in order every epoch.
        drop_last: drop the last batch of an epoch when it is shorter than ``batch_size``.

    As a DataLoader ``batch_sampler`` it yields, as lists of ints, the batches of the
    epoch set by :meth:`set_epoch`, from batch ``start`` on; ``len()`` is the number
    of batches of a whole epoch.
    """

    def __init__(
        self, n: int, batch_size: int, *, seed: int = 0, shuffle: bool = True, drop_last: bool = False
    ):
        for name, v in (("n", n), ("batch_size", batch_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.n, self.batch_size = n, batch_size
        self.seed = check_seed(seed)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.batches_per_epoch = n // batch_size if drop_last else -(-n // batch_size)
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"drop_last=True with {n} examples and batch_size={batch_size} leaves no batch at all; "
                "use a smaller batch_size or drop_last=False"
            )
        self.epoch, self.start = 0, 0
        self._cache: tuple[int, torch.Tensor] | None = None

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __repr__(self) -> str:
        return (
            f"BatchOrder(n={self.n}, batch_size={self.batch_size}, seed={self.seed}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last})"
        )

    def config(self) -> dict[str, Any]:
        """What fixes the order: compare it to refuse resuming with another order."""
        return {
            "n": self.n,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
        }

    def permutation(self, epoch: int) -> torch.Tensor:
        """The order (a CPU int64 tensor of the ``n`` indices) in which epoch ``epoch`` visits the data."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        if self._cache is None or self._cache[0] != epoch:
            if self.shuffle:
                g = torch.Generator().manual_seed(derive_seed(self.seed, "data-order", epoch))
                perm = torch.randperm(self.n, generator=g)
            else:
                perm = torch.arange(self.n)
            self._cache = (epoch, perm)
        return self._cache[1]

    def indices(self, epoch: int, batch: int) -> torch.Tensor:
        """The example indices (CPU int64 tensor) of batch ``batch`` of epoch ``epoch``."""
        if not 0 <= batch < self.batches_per_epoch:
            raise IndexError(f"batch {batch} of an epoch of {self.batches_per_epoch} batches")
        return self.permutation(epoch)[batch * self.batch_size : (batch + 1) * self.batch_size]

    def position(self, step: int) -> tuple[int, int]:
        """``(epoch, batch)`` of the ``step``-th batch of the whole run (counting from 0)."""
        return divmod(step, self.batches_per_epoch)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Make the next ``iter()`` yield the batches of ``epoch`` from batch ``start`` on."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        if not 0 <= start <= self.batches_per_epoch:
            raise ValueError(f"start must be in [0, {self.batches_per_epoch}], got {start!r}")
        self.epoch, self.start = epoch, start

    def epoch_batches(self, epoch: int, start: int = 0) -> Iterator[torch.Tensor]:
        """The index tensors of the batches of ``epoch``, from batch ``start`` on."""
        perm = self.permutation(epoch)
        bs = self.batch_size
        for i in range(start, self.batches_per_epoch):
            yield perm[i * bs : (i + 1) * bs]

    def __iter__(self) -> Iterator[list[int]]:
        # the epoch and start are read now, not when the DataLoader first calls next()
        return (idx.tolist() for idx in self.epoch_batches(self.epoch, self.start))


class ResumableLoader:
    """Batches forever across epochs, in the order of a :class:`BatchOrder`; the position is its state.

    Args:
        dataset: a map-style dataset (``len()`` and ``dataset[i]``), read through a
            ``torch.utils.data.DataLoader`` with ``batch_sampler=`` the order.
        batch_size, seed, shuffle, drop_last: those of the :class:`BatchOrder`.
        **loader_kwargs: passed to the DataLoader (``num_workers``, ``collate_fn``,
            ``pin_memory``, ``persistent_workers``, ...). The batching arguments and
            ``generator`` belong to this class and are refused there.

    ``next(loader)`` returns the next batch; ``loader.epoch`` and ``loader.batch`` are the
    position of the batch it returns next. ``state_dict()`` holds that position and
    the order's config: loading the state of a different order is a ``ValueError``.
    """

    def __init__(
        self,
        dataset: Any,
        *,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
        **loader_kwargs: Any,
    ):
        owned = sorted(set(loader_kwargs) & set(_LOADER_OWNED))
        if owned:
            raise ValueError(
                f"ResumableLoader sets the DataLoader's {owned} itself; pass batch_size=, seed=, shuffle= "
                "and drop_last= to ResumableLoader instead (the order must be resumable)"
            )
        try:
            n = len(dataset)
        except TypeError:
            raise TypeError(
                f"ResumableLoader needs a map-style dataset with len(); got a {type(dataset).__qualname__}"
            ) from None
        self.order = BatchOrder(n, batch_size, seed=seed, shuffle=shuffle, drop_last=drop_last)
        self.dataset = dataset
        self._tensors: tuple[torch.Tensor, ...] | None = None
        self._generator: torch.Generator | None = torch.Generator()  # None for from_tensors
        from torch.utils.data import DataLoader

        self.loader: DataLoader | None = DataLoader(
            dataset, batch_sampler=self.order, generator=self._generator, **loader_kwargs
        )
        self.epoch, self.batch = 0, 0
        self._it: Iterator | None = None

    @classmethod
    def from_tensors(
        cls,
        *tensors: torch.Tensor,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
    ) -> ResumableLoader:
        """Batches of tensors indexed directly (no DataLoader): for data already on its device.

        ``next()`` returns ``tensors[0][idx]`` for one tensor, else the tuple of every
        ``t[idx]``; ``idx`` is moved to each tensor's device.
        """
        if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
            raise TypeError("from_tensors needs one or more tensors")
        n = tensors[0].shape[0] if tensors[0].dim() else 0
        if any(t.dim() == 0 or t.shape[0] != n for t in tensors):
            raise ValueError(
                "the tensors must share their first dimension; got shapes "
                f"{[tuple(t.shape) for t in tensors]}"
            )
        self = cls.__new__(cls)
        self.order = BatchOrder(n, batch_size, seed=seed, shuffle=shuffle, drop_last=drop_last)
        self.dataset, self.loader, self._generator = None, None, None
        self._tensors = tuple(tensors)
        self.epoch, self.batch = 0, 0
        self._it = None
        return self

    def __repr__(self) -> str:
        return f"ResumableLoader({self.order!r}, epoch={self.epoch}, batch={self.batch})"

    def __len__(self) -> int:
        """Batches per epoch."""
        return len(self.order)

    @property
    def batches_per_epoch(self) -> int:
        return len(self.order)

    @property
    def consumed(self) -> int:
        """Batches returned so far over the whole run."""
        return self.epoch * len(self.order) + self.batch

    def _start_iterator(self) -> Iterator:
        if self._tensors is not None:
            tensors = self._tensors

            def fetch():
                for idx in self.order.epoch_batches(self.epoch, self.batch):
                    out = tuple(t[idx.to(t.device)] for t in tensors)
                    yield out[0] if len(out) == 1 else out

            return fetch()
        self.order.set_epoch(self.epoch, self.batch)
        assert self._generator is not None and self.loader is not None  # a loader over a dataset
        self._generator.manual_seed(derive_seed(self.order.seed, "data-loader", self.epoch, self.batch))
        return iter(self.loader)

    def __iter__(self) -> ResumableLoader:
        return self

    def __next__(self) -> Any:
        if self._it is None:
            self._it = self._start_iterator()
        try:
            item = next(self._it)
        except StopIteration:  # pragma: no cover - the epoch is rolled over when its last batch is consumed
            raise RuntimeError(
                f"the DataLoader ended epoch {self.epoch} after {self.batch} of {len(self.order)} batches; "
                "its dataset or batch sampler changed while iterating"
            ) from None
        self.batch += 1
        if self.batch == len(self.order):
            self.epoch, self.batch = self.epoch + 1, 0
            self._it = None  # the next epoch starts a fresh iterator (and its own order)
        return item

    def next(self) -> Any:
        """The next batch (the same as ``next(loader)``)."""
        return self.__next__()

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch": self.batch, "order": self.order.config()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Go to the saved position; the next batch is the one after the last one consumed then."""
        try:
            epoch, batch, order = int(state["epoch"]), int(state["batch"]), dict(state["order"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"not the state of a ResumableLoader (need epoch, batch and order; got {sorted(state)})"
            ) from None
        mine = self.order.config()
        diff = sorted(k for k in set(order) | set(mine) if order.get(k) != mine.get(k))
        if diff:
            detail = ", ".join(f"{k}: saved {order.get(k)!r}, now {mine.get(k)!r}" for k in diff)
            raise ValueError(
                f"the saved batch order differs from this loader's ({detail}); resume with the same data "
                "and order settings, or start a new run"
            )
        if epoch < 0 or not 0 <= batch < len(self.order):
            raise ValueError(f"invalid position epoch={epoch}, batch={batch} of {len(self.order)} batches")
        self.epoch, self.batch = epoch, batch
        self._it = None  # rebuilt at the next batch, starting there: skipped batches are not loaded
