"""``compile_step``: the whole training step (forward, backward, Adam, and the bfloat16 copy of the
weights) as one graph compiled by inductor.

Why: on the CPU a small model's step is mostly not its matrix products. In the dense VAE of
``benchmarks/models.py`` (784-256-128-32) the 17 products of a bfloat16 step are about half of a
3.7 ms step with ``torch.compile`` of the loss; the rest is autograd's engine, the optimizer's
Python, two compiled graphs' wrappers, dynamo's guards, the weights' casts and small elementwise
passes (``benchmarks/vae_step_speed.py --ops``). Here the loss's gradient is taken by
``torch.func.grad`` inside the compiled function, so AOTAutograd traces forward and backward
together and inductor fuses the elementwise work of both with the Adam update, which also writes
the bfloat16 working copy of each weight: 2.9 ms, of which 1.9 ms are the products.

How the state is kept: the model's parameters become views into one flat float32 tensor (the
master weights), and Adam's ``exp_avg`` / ``exp_avg_sq`` / ``step`` in the trainer's own optimizer
become views into flat tensors too, so checkpoints, ``resume``, evaluation and the normal
(eager) step all see and update the same numbers. A batch of another size (the last of an epoch)
takes the normal step; after it, or after any change to the weights made elsewhere (their version
counters move), the bfloat16 copy is refreshed before the next compiled step.

Numbers: with ``cpu_bf16`` the step computes what the ``torch.autocast`` step computes (the same
bfloat16 weights and products, the same random draws through ``fallback_random``), up to rounding:
inductor keeps some of autocast's bfloat16 intermediates in float32 and sums in its own order.
``tests/test_compiled_step.py`` holds float32 to 1e-4 of the normal step, and bf16 to within 5% of
how far training moved the weights, with a resume that is exact.

A non-finite loss stops training with the same error as the normal step, and the checkpoints on
disk are untouched; unlike the normal step (which checks the loss before its update), the weights
in memory have then taken that step's update, so a caller of the Python API should reload the run
rather than go on with the model object.

How it is called: the first call goes through dynamo, which traces ``_step`` and hands the graph to
inductor through :meth:`CompiledStep._backend`; that notes which of the step's tensors each graph
input is. Later calls pass those tensors (and the new batch) to inductor's compiled graph directly,
as dynamo's own compiled code does, without dynamo's frame evaluation and guard checks (0.2-0.3 ms of
a 3 ms VAE step; ``tests/test_compiled_step.py`` checks that both give the same weights bit for bit).
A batch of another shape, dtype or layout takes the normal step; the step's other inputs are the same
tensors every time.

When it does not apply (several phases, an optimizer other than adam/adamw, ``grad_clip``,
``nan_policy="skip"``, a device other than the CPU, DDP, a loss that cannot be traced as one
graph, or no C++ compiler), :func:`build` returns the reason and the trainer keeps its normal step.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import shutil
import types
from typing import Any

import torch
from torch import Tensor, nn

from aekit.data.batches import Batch

_INSTANCES = itertools.count()
_X, _Y = object(), object()  # the batch's samples and labels, in CompiledStep.slots


class _Loss(nn.Module):
    """The model's loss as ``forward``, for ``functional_call``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, y: Tensor | None) -> dict[str, Tensor]:
        return self.model.loss(Batch(x, y), "main")


def unsupported(trainer: Any) -> str | None:
    """Why ``trainer`` cannot take the compiled step, or None when it can."""
    cfg, model = trainer.config, trainer.model
    reasons = [
        (trainer.device.type != "cpu", f"device {trainer.device.type} (the compiled step is for the CPU)"),
        (trainer.ddp is not None, "distributed training"),
        (list(model.phases) != ["main"], f"{type(model).__name__} trains {len(model.phases)} phases"),
        (cfg.optimizer not in ("adam", "adamw"), f"optimizer {cfg.optimizer} (adam or adamw only)"),
        (cfg.grad_clip > 0, "grad_clip"),
        (cfg.nan_policy == "skip", "nan_policy skip"),
        (shutil.which("c++") is None and shutil.which("g++") is None, "no C++ compiler on PATH"),
        (any(p.dtype != torch.float32 for p in model.parameters()), "parameters that are not float32"),
    ]
    return next((why for bad, why in reasons if bad), None)


class CompiledStep:
    """One compiled training step for ``trainer`` (see the module's docstring); build with :func:`build`."""

    OPTIONS: dict[str, Any] = {"fallback_random": True, "cpp_wrapper": True}

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        model, cfg = trainer.model, trainer.config
        self.opt = trainer.optimizers["main"]
        self.bf16 = bool(cfg.cpu_bf16)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.loss_module = _Loss(model)
        names = dict((id(p), n) for n, p in self.loss_module.named_parameters())
        self.names = [names[id(p)] for p in self.params]
        self.buffers = dict(self.loss_module.named_buffers())
        self.shapes = [p.shape for p in self.params]
        self.sizes = [p.numel() for p in self.params]
        n = sum(self.sizes)
        # flat master weights; the parameters become views of it (state_dict and eval see them)
        self.flat = torch.empty(n)
        for p, view in zip(self.params, self._views(self.flat), strict=True):
            view.copy_(p.detach())
            p.data = view
        # Adam's state: flat, with the optimizer's own state entries as views (checkpoints see it)
        self.exp_avg, self.exp_avg_sq = torch.zeros(n), torch.zeros(n)
        self.steps = torch.zeros(len(self.params))
        for i, (p, m, v) in enumerate(
            zip(self.params, self._views(self.exp_avg), self._views(self.exp_avg_sq), strict=True)
        ):
            state = self.opt.state.get(p)
            if state:  # resumed: continue from the loaded moments
                m.copy_(state["exp_avg"])
                v.copy_(state["exp_avg_sq"])
                self.steps[i] = float(state["step"])
            self.opt.state[p] = {"step": self.steps[i], "exp_avg": m, "exp_avg_sq": v}
        self.work = self.flat.to(torch.bfloat16) if self.bf16 else None
        self.version = self._version()
        self.stale = True  # the first call reads the step counter
        self.count = 0
        self.layout: tuple | None = None  # the batch's shapes, dtypes, strides compiled for (see _layout)
        group = self.opt.param_groups[0]
        self.beta1, self.beta2 = group["betas"]
        self.eps, self.weight_decay = group["eps"], group["weight_decay"]
        self.decoupled = cfg.optimizer == "adamw"
        self.scalars = torch.zeros(3)  # lr and Adam's two bias corrections for the next step
        self._scalars = self.scalars.numpy()  # written in place without a tensor's dispatch
        self.keys: list[str] = []
        # inductor's compiled graph and where each of its inputs comes from, kept by _backend: after the
        # first (compiling) call through dynamo the step calls the graph directly (see _direct)
        self.graph: Any = None
        self.slots: list[Tensor | object] = []  # a tensor of the step, or _X / _Y: the batch's
        self._compiling_batch: Batch | None = None
        # dynamo keeps compiled code per code object: a copy of _step's code for each instance gives
        # each its own single cache entry, so that skipping the guard checks (_stance) cannot pick
        # another instance's graph
        fn = CompiledStep._step
        code = fn.__code__.replace(co_name=f"_compiled_step_{next(_INSTANCES)}")
        unique = types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)
        self.fn = torch.compile(
            types.MethodType(unique, self), backend=self._backend, fullgraph=True, dynamic=False
        )

    def _backend(self, gm: torch.fx.GraphModule, example_inputs: list[Tensor]) -> Any:
        """Inductor, as ``torch.compile``'s default backend runs it; also notes which of the step's tensors
        each graph input is (by identity: dynamo passes the tensors themselves), so that later steps can
        call the graph without dynamo's frame evaluation (0.2-0.3 ms a step, a tenth of the VAE's)."""
        compiled = torch._inductor.compile(gm, example_inputs, options=self.OPTIONS)
        batch = self._compiling_batch
        known: dict[int, Tensor | object] = {}
        if batch is not None:
            leaves = torch.utils._pytree.tree_leaves(self._inputs(batch))  # the tensors _step is given
            tensors = [t for t in leaves if isinstance(t, Tensor)]  # not a None work copy or label
            known = {id(t): _X if t is batch.x else _Y if t is batch.y else t for t in tensors}
        slots = [known.get(id(t)) for t in example_inputs]
        outputs = gm.graph.output_node().args[0]
        if all(s is not None for s in slots) and len(outputs) == 1:  # else every step goes through dynamo
            self.graph, self.slots = compiled, slots
        return compiled

    def _inputs(self, batch: Batch) -> tuple:
        """``_step``'s arguments for ``batch``."""
        state = (self.flat, self.work, self.exp_avg, self.exp_avg_sq, self.steps, self.scalars, self.buffers)
        return (*state, batch.x, batch.y)

    def _direct(self, batch: Batch) -> Tensor:
        """The compiled graph's call, as dynamo's compiled code makes it (the graph returns one tensor)."""
        args = [batch.x if s is _X else batch.y if s is _Y else s for s in self.slots]
        return self.graph(*args)[0]

    def _version(self) -> int:
        """Moves when anything else writes the weights: the parameters keep their own version counters
        after ``p.data = view`` (the normal step's Adam, ``load_state_dict``), the flat tensor its own."""
        return self.flat._version + sum(p._version for p in self.params)

    def _stance(self):
        """After the first (compiling) call, skip dynamo's guard checks: the step's inputs are the same
        tensors every time (only their values change) and its batch size is checked in ``__call__``."""
        if not self.keys:
            return contextlib.nullcontext()
        return torch.compiler.set_stance("default", skip_guard_eval_unsafe=True)

    def _views(self, flat: Tensor) -> list[Tensor]:
        return [t.view(s) for t, s in zip(flat.split(self.sizes), self.shapes, strict=True)]

    def _step(
        self,
        flat: Tensor,
        work: Tensor | None,
        exp_avg: Tensor,
        exp_avg_sq: Tensor,
        steps: Tensor,
        scalars: Tensor,
        buffers: dict[str, Tensor],
        x: Tensor,
        y: Tensor | None,
    ) -> Tensor:
        weights = self._views(work if work is not None else flat)

        def loss(ws: list[Tensor], bufs: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
            state = {**dict(zip(self.names, ws, strict=True)), **bufs}
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                terms = torch.func.functional_call(self.loss_module, state, (x, y))
            return terms["loss"], terms

        grads, terms = torch.func.grad(loss, argnums=0, has_aux=True)(weights, buffers)
        self.keys = list(terms)  # a side effect dynamo replays: the names of the returned values
        # Adam over the flat tensors, one pass (in-place updates of views would copy the whole base)
        g = torch.cat([g.flatten() for g in grads]).float()
        steps.add_(1)
        # lr, lr / (1 - b1^t) and 1 / sqrt(1 - b2^t), computed outside: as expressions of the step
        # counter inductor would recompute the powers for every vector of every element loop
        rate, step_size, inv_root_c2 = scalars[0], scalars[1], scalars[2]
        if self.weight_decay and not self.decoupled:
            g = g + self.weight_decay * flat
        exp_avg.lerp_(g, 1 - self.beta1)
        exp_avg_sq.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
        new = flat * (1 - rate * self.weight_decay) if self.weight_decay and self.decoupled else flat
        new = new - step_size * exp_avg / (exp_avg_sq.sqrt() * inv_root_c2 + self.eps)
        flat.copy_(new)
        if work is not None:
            work.copy_(new)
        return torch.stack([v.detach().float() for v in terms.values()])

    def __call__(self, batch: Batch, lr: float) -> dict[str, float] | None:
        """Take the step on ``batch`` at ``lr``; None when its size or layout is not the compiled one."""
        layout = _layout(batch)
        if self.layout is None:
            self.layout = layout
        if layout != self.layout:
            self.stale = True  # the normal step takes this batch (its fused Adam moves no version counter)
            return None
        if self.stale or self._version() != self.version:  # weights or steps moved elsewhere: catch up
            if self.work is not None:
                self.work.copy_(self.flat)
            self.count = int(self.steps[0])
            self.stale = False
        self.count += 1  # Adam's step counter, kept in Python too: reading the tensor costs a call
        t = self.count
        step_size = lr / (1 - self.beta1**t)
        self._scalars[:] = (lr, step_size, 1 / math.sqrt(1 - self.beta2**t))
        if self.graph is not None:
            values = self._direct(batch)
        else:
            self._compiling_batch = batch
            with self._stance():
                values = self.fn(*self._inputs(batch))
            self._compiling_batch = None
        self.version = self._version()
        return dict(zip(self.keys, values.tolist(), strict=True))


def _layout(batch: Batch) -> tuple:
    """What the compiled graph assumes of a batch's tensors (it checks none of it)."""
    return tuple(None if t is None else (t.shape, t.dtype, t.stride()) for t in (batch.x, batch.y))


def build(trainer: Any) -> tuple[CompiledStep | None, str | None]:
    """The compiled step for ``trainer``, or (None, why not)."""
    why = unsupported(trainer)
    if why is not None:
        return None, why
    return CompiledStep(trainer), None
