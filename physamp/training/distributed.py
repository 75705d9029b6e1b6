"""Data-parallel training over several processes (``torchrun``): one global batch, divided among them.

Launch (one node, four processes; each process gets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` from ``torchrun``)::

    torchrun --nproc_per_node 4 -m physamp train-ali --dataset celeba --data-root DIR

and in the code that trains::

    dist = Distributed.from_env()          # None when not launched by torchrun (or 1 process)
    trainer = ALITrainer(cfg, x, device=dist.device if dist else "auto", dist=dist)
    trainer.fit(run_dir=...)
    if dist is not None:
        dist.close()                       # (a Distributed is also a context manager)

The global batch is divided among the processes
    ``--batch-size`` is the **global** batch (the table's, whatever the number of
    processes); each of ``k`` processes trains on its ``batch_size / k`` examples of it
    (the batch must divide evenly). The trainer draws the data order, ``z`` and ``ε`` of
    the whole global batch from its own generators and each process takes its slice,
    so ``k`` processes compute what one process computes on that batch, up to the
    order of floating-point sums (tests: parameters within ``1e-5`` after several steps).

What is synchronised
    - Gradients: every trained player is wrapped in
      :class:`~torch.nn.parallel.DistributedDataParallel`, which averages its gradients
      over the processes during ``backward`` (a frozen decoder is not wrapped: DDP
      refuses a module with nothing to train). Every process's loss is the mean over
      its shard, so the average is the gradient of the global batch's loss.
    - Batch norm: it normalises with the statistics of the **global** batch, as one
      process would, so ``k`` processes match one exactly (not "per-GPU" batch norm).
      On CUDA the layers become :class:`torch.nn.SyncBatchNorm`; on CPU, which
      ``SyncBatchNorm`` does not support, they become :class:`GlobalBatchNorm` (below).
      Both keep the parameter and buffer names, so checkpoints are interchangeable with
      single-process ones. The discriminator scores ``cat([x, x̃])`` of each process's
      shard; the union of the shards' concatenations is the single process's
      concatenation, so the statistics are the same.
    - Weights: identical from the start (the trainer seeds the initialisation from the
      config's seed; DDP also broadcasts process 0's weights and buffers when it wraps,
      and its buffers at every forward).
    - Resume: process 0 loads the run directory's checkpoint and sends its state to
      every process (:meth:`Distributed.sync_resume`), so all start at the same step with
      the same weights, optimisers and generators. Only process 0 writes the run directory
      (config, metrics, checkpoints) and runs callbacks and the progress bar.

gloo or nccl
    ``Distributed.from_env(device="auto")`` takes CUDA when there is one (backend
    ``nccl``, process ``LOCAL_RANK`` on ``cuda:LOCAL_RANK``), else the CPU (backend
    ``gloo``, for tests and small runs). ``torchrun`` sets ``OMP_NUM_THREADS=1`` unless
    it is set: on CPU the processes share the cores.

How DDP meets the two ``backward`` calls of Algorithm 1
    The ALI step takes both players' gradients from one forward pass:
    ``loss_d.backward(inputs=θ_d, retain_graph=True)`` then
    ``loss_g.backward(inputs=θ_g)``. With ``inputs`` autograd runs only the nodes that
    lead to those parameters, so the first call fires the hooks of the discriminator's
    DDP only (the generators' parameters are not reached), and the second, which passes
    back *through* the discriminator's graph to its inputs, fires the encoder's and the
    decoder's only (the discriminator's parameters are not accumulated again). Each DDP
    wrapper therefore sees exactly one backward per forward, which is what its reducer
    expects with the default settings (``find_unused_parameters=False``, no
    ``static_graph``); nothing else is needed (the tests check it against one process).

Limitations
    - Dropout draws from each process's global generator (seeded per process by the
      trainer). A checkpoint holds process 0's generator states only: after a resume,
      process 0 continues its stream exactly and every other process gets a new stream
      derived from that state and its rank (distinct per process, the same on every
      rerun). So a resumed multi-process run with dropout differs from an uninterrupted
      one (without dropout, e.g. the toy, it is exact); a single-process resume is exact.
    - The ALI step averages its metrics over the processes with :meth:`Distributed.mean`
      (the global batch's means); a non-finite loss on any process is therefore seen by every
      process, and all stop at the same step.
    - The numbers of processes and of examples per process change the order of
      floating-point sums: runs with different ``k`` agree to rounding, not bitwise.
    - Any other error in one process stops that process; ``torchrun`` then stops the others.
    - :class:`GlobalBatchNorm` computes the statistics with ordinary autograd operations,
      slower and heavier than a fused kernel: CPU runs are for tests and small models.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["Distributed", "GlobalBatchNorm", "convert_global_batchnorm"]


def _dist():
    import torch.distributed as dist

    return dist


def _world(group=None) -> int:
    dist = _dist()
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group)


class _AllReduceSum(torch.autograd.Function):
    """The sum over the processes, differentiable: the gradient of every input is the sum of the
    gradients of every process's output (an all-reduce again)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group: Any) -> torch.Tensor:
        ctx.group = group
        out = tensor.clone(memory_format=torch.contiguous_format)
        _dist().all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.clone(memory_format=torch.contiguous_format)
        _dist().all_reduce(grad, group=ctx.group)
        return grad, None


class GlobalBatchNorm(_BatchNorm):
    """Batch norm over the global batch of all processes, on any device (CPU included).

    A drop-in for :class:`~torch.nn.BatchNorm1d` / ``2d`` / ``3d`` (same parameters and
    buffers, same names): in training mode it normalises with the mean and the (biased)
    variance of the batch of every process of ``process_group`` together, and updates
    the running statistics as :class:`~torch.nn.BatchNorm2d` on that whole batch would
    (``momentum``, the unbiased variance); in eval mode it uses the running statistics.
    Without an initialised process group (or with one process) it is ordinary batch norm.

    Each process reduces its shard to per-channel ``(count, sum, centred sum of squares
    + count·mean²)``; one differentiable all-reduce (whose backward all-reduces the
    gradients) adds them over the processes, in float64, so the gradients flow
    through the global statistics exactly as they do through one process's.
    Every process must call it in the same order (as it does in a data-parallel step).
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group: Any = None,
        device=None,
        dtype=None,
    ):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.process_group = process_group

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (B, C, ...), got {input.dim()}D input")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        batch_stats = self.training or not self.track_running_stats
        if not batch_stats or _world(self.process_group) == 1:
            return super().forward(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average, as nn.BatchNorm
                factor = 1.0 / float(self.num_batches_tracked)

        c = input.shape[1]
        dims = [0, *range(2, input.dim())]
        shape = [1, c] + [1] * (input.dim() - 2)
        n_local = input.numel() // c if c else 0
        if n_local:
            mean_local = input.mean(dims)
            m2_local = (input - mean_local.view(shape)).square().sum(dims)
            mean_local, m2_local = mean_local.double(), m2_local.double()
        else:  # an empty shard contributes nothing
            mean_local = m2_local = input.new_zeros(c, dtype=torch.float64)
        count = torch.full((1, c), float(n_local), dtype=torch.float64, device=input.device)
        stats = torch.cat(
            [count, (n_local * mean_local)[None], (m2_local + n_local * mean_local.square())[None]]
        )
        count, total, total_sq = _AllReduceSum.apply(stats, self.process_group)
        n = float(count[0].detach())
        if n <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got a global batch of {n:g}"
            )
        mean = total / n
        var = (total_sq / n - mean.square()).clamp_min(0.0)  # biased: what normalises
        if self.training and self.track_running_stats:
            assert self.running_mean is not None and self.running_var is not None  # track_running_stats
            with torch.no_grad():
                self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
                unbiased = var * (n / (n - 1))
                self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)
        invstd = torch.rsqrt(var + self.eps).to(input.dtype)
        out = (input - mean.to(input.dtype).view(shape)) * invstd.view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def convert_global_batchnorm(module: nn.Module, process_group: Any = None) -> nn.Module:
    """Replace every batch-norm layer of ``module`` (in place) by a :class:`GlobalBatchNorm`.

    The new layers hold the **same** parameter and buffer objects (optimisers made
    before keep working; the state dict is unchanged), and the same mode. Returns
    ``module`` (or the new layer when ``module`` itself is a batch norm), as
    :meth:`torch.nn.SyncBatchNorm.convert_sync_batchnorm` does.
    """
    if isinstance(module, _BatchNorm) and not isinstance(module, (GlobalBatchNorm, nn.SyncBatchNorm)):
        new = GlobalBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
            process_group,
        )
        # the very objects, not copies (the parameters and buffers registered by __init__ are replaced)
        new._parameters = dict(module._parameters)
        new._buffers = dict(module._buffers)
        new.training = module.training
        return new
    for name, child in list(module.named_children()):
        new_child = convert_global_batchnorm(child, process_group)
        if new_child is not child:
            module._modules[name] = new_child
    return module


def _to_cpu(obj: Any) -> Any:
    """A copy of a (nested) state with every tensor on the CPU, to send to other processes."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        out = (OrderedDict if isinstance(obj, OrderedDict) else dict)((k, _to_cpu(v)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):  # a module's state dict: its version information
            out._metadata = obj._metadata  # type: ignore[attr-defined]  # (an OrderedDict takes attributes)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _resolve(device: str | torch.device, local_rank: int) -> torch.device:
    spec = str(device)
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(spec)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} was asked for, but CUDA is not available")
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
        if dev.index >= torch.cuda.device_count():
            raise RuntimeError(
                f"process LOCAL_RANK={local_rank} would use {dev}, but this node has "
                f"{torch.cuda.device_count()} CUDA device(s); start at most that many processes per node"
            )
    elif dev.type != "cpu":
        raise ValueError(f"distributed training runs on CPU (gloo) or CUDA (nccl), not on {dev.type!r}")
    return dev


class Distributed:
    """This process's place in a data-parallel run: ``rank`` of ``world_size``, its device.

    Made by :meth:`from_env` under ``torchrun`` (which starts the process group), or
    directly for a process group started elsewhere. ``close()`` (or leaving a ``with``
    block) destroys the group if this object started it.

    Attributes:
        rank, world_size: this process's index and the number of processes.
        local_rank: its index on this node (its CUDA device).
        device: where it trains (``cuda:local_rank``, or the CPU).
        is_main: whether it is process 0, the one that writes the run directory.
        backend: ``"nccl"`` (CUDA) or ``"gloo"`` (CPU).
    """

    def __init__(
        self,
        rank: int,
        world_size: int,
        local_rank: int = 0,
        device: str | torch.device = "cpu",
        *,
        owns_group: bool = False,
    ):
        if not (0 <= rank < world_size):
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        self.rank, self.world_size, self.local_rank = int(rank), int(world_size), int(local_rank)
        self.device = torch.device(device)
        self.backend = "nccl" if self.device.type == "cuda" else "gloo"
        self._owns_group = owns_group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def __repr__(self) -> str:
        where = f"device={self.device}, backend={self.backend}"
        return f"Distributed(rank={self.rank}, world_size={self.world_size}, {where})"

    @classmethod
    def from_env(
        cls, device: str | torch.device = "auto", *, timeout_s: float | None = None
    ) -> Distributed | None:
        """The run ``torchrun`` started this process in, or None when it did not (``WORLD_SIZE``
        unset or 1).

        Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and ``MASTER_ADDR`` / ``MASTER_PORT``
        through ``init_method="env://"``), picks the device (``"auto"``: ``cuda:LOCAL_RANK``
        if CUDA is available, else the CPU) and starts the process group: ``nccl`` on CUDA,
        ``gloo`` on CPU. An already started group is used as it is (and not destroyed by
        :meth:`close`).
        """
        env = os.environ
        raw = env.get("WORLD_SIZE")
        if raw is None or raw.strip() == "":
            return None
        world_size = _env_int("WORLD_SIZE")
        if world_size <= 1:
            return None
        missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not env.get(k)]
        if missing:
            raise RuntimeError(
                f"WORLD_SIZE={world_size} but {', '.join(missing)} is not set; launch with torchrun "
                "(torchrun --nproc_per_node K -m physamp ...)"
            )
        rank = _env_int("RANK")
        local_rank = _env_int("LOCAL_RANK") if env.get("LOCAL_RANK") else rank
        dist = _dist()
        if not dist.is_available():
            raise RuntimeError(
                "this build of PyTorch has no torch.distributed; it cannot train in several processes"
            )
        dev = _resolve(device, local_rank)
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        owns = not dist.is_initialized()
        if owns:
            kwargs = {}
            if timeout_s is not None:
                from datetime import timedelta

                kwargs["timeout"] = timedelta(seconds=timeout_s)
            dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world_size, **kwargs)
        elif dist.get_world_size() != world_size or dist.get_rank() != rank:
            raise RuntimeError(
                f"a process group is already started (rank {dist.get_rank()} of {dist.get_world_size()}), "
                f"but the environment says rank {rank} of {world_size}"
            )
        return cls(rank, world_size, local_rank, dev, owns_group=owns)

    # --- the players -------------------------------------------------------------------
    def sync_batchnorm(self, module: nn.Module) -> nn.Module:
        """``module`` with batch norm over the global batch (in place): ``SyncBatchNorm`` on
        CUDA, :class:`GlobalBatchNorm` elsewhere."""
        if self.device.type == "cuda":
            return nn.SyncBatchNorm.convert_sync_batchnorm(module)
        return convert_global_batchnorm(module)

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` in :class:`~torch.nn.parallel.DistributedDataParallel` (gradients averaged)."""
        from torch.nn.parallel import DistributedDataParallel

        wrong = {str(p.device) for p in module.parameters() if p.device != self.device}
        if wrong:
            raise ValueError(
                f"the module is on {', '.join(sorted(wrong))}, but this process trains on {self.device}; "
                "make the trainer with device=dist.device"
            )
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, output_device=ids[0] if ids else None)

    def wrap_players(self, ali: nn.Module, train_decoder: bool = True):
        """``(encoder, decoder, discriminator)`` of an ALI model for the data-parallel step.

        Batch norm of every player (a frozen decoder's too, should it run in training mode;
        the trainer runs it in eval mode, where nothing is synchronised) is converted, in
        place, to global-batch batch norm; every trained player is wrapped in DDP. The
        encoder is None for the GAN baseline; a frozen decoder (``train_decoder=False``) is
        returned unwrapped. ``ali`` keeps the unwrapped players, with unchanged parameter
        objects and state-dict keys.
        """
        players: list[nn.Module | None] = []
        for name in ("encoder", "decoder", "discriminator"):
            module = getattr(ali, name)
            if module is None:
                players.append(None)
                continue
            converted = self.sync_batchnorm(module)
            if converted is not module:  # a player that is itself one batch-norm layer
                setattr(ali, name, converted)
                module = converted
            trained = train_decoder or name != "decoder"
            trained = trained and any(p.requires_grad for p in module.parameters())
            players.append(self.wrap(module) if trained else module)
        return tuple(players)

    # --- state --------------------------------------------------------------------------
    def sync_resume(self, loop, run_dir=None) -> bool:
        """Process 0 resumes ``loop`` from its run directory's checkpoint; every process gets its state.

        Every process must call it (it is a collective). Returns whether the run resumed.
        ``run_dir`` is the run's directory as the trainer was given it (process 0's ``loop``
        holds it; the others have none), accepted for symmetry and not needed here.
        After it, every process is at process 0's step with process 0's weights, optimiser
        states, generators and partial metric sums. The global generator (dropout) of the
        processes other than 0 is then reseeded from process 0's state and the rank, so the
        processes keep distinct dropout streams (see the module docstring).
        """
        dist = _dist()
        payload: list[Any] = [None]
        error: BaseException | None = None
        if self.is_main:
            try:
                if loop.resume():
                    payload = [{"state": _to_cpu(loop.state_dict())}]
            except BaseException as err:  # tell the others, then raise it here
                error = err
                payload = [{"error": f"{type(err).__name__}: {err}"}]
        dist.broadcast_object_list(payload, src=0)
        if error is not None:
            raise error
        got = payload[0]
        if got is not None and "error" in got:
            raise RuntimeError(f"process 0 could not resume the run: {got['error']}")
        if got is None:
            return False
        if not self.is_main:
            state = got["state"]
            # process 0's CUDA generators are not this process's (its device list may differ too):
            # they are reseeded below with the CPU one
            state["rng"] = {k: v for k, v in state["rng"].items() if k != "cuda"}
            loop.load_state_dict(state, where="process 0's checkpoint")
            digest = hashlib.blake2b(
                state["rng"]["torch"].numpy().tobytes() + f"\x1frank\x1f{self.rank}".encode(), digest_size=8
            ).digest()
            torch.manual_seed(int.from_bytes(digest, "little") >> 1)  # the CPU and every CUDA generator
        return True

    # --- collectives -------------------------------------------------------------------
    def mean(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """The mean over the processes of each scalar metric (one all-reduce for all of them);
        tensors come back as tensors on this process's device, numbers as floats."""
        if not metrics:
            return {}
        keys = list(metrics)
        values = torch.stack(
            [torch.as_tensor(metrics[k], dtype=torch.float64).to(self.device).reshape(()) for k in keys]
        )
        _dist().all_reduce(values)
        values = values / self.world_size
        return {
            k: (values[i] if isinstance(metrics[k], torch.Tensor) else float(values[i]))
            for i, k in enumerate(keys)
        }

    def barrier(self) -> None:
        if self.device.type == "cuda":
            _dist().barrier(device_ids=[self.device.index])
        else:
            _dist().barrier()

    def close(self) -> None:
        """Destroy the process group if :meth:`from_env` started it (idempotent)."""
        dist = _dist()
        if self._owns_group and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        self._owns_group = False

    def __enter__(self) -> Distributed:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _env_int(name: str) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"the environment variable {name}={value!r} is not an integer") from None
