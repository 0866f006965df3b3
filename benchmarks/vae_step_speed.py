"""Where a VAE training step's time goes, and what each speed-up buys, against pythae's step.

The VAE of ``benchmarks/models.py`` (784-256-128-32, Bernoulli decoder, Adam 1e-3) on Fashion-MNIST,
one thread. Every variant and pythae's own training step (its model's forward and loss, backward,
and the Adam pythae's trainer builds: ``torch.optim.Adam`` with its defaults) are timed in the
same process, interleaved in rounds of ``--steps`` steps, so that the shared machine's load falls
on all of them alike. Speed is training samples per CPU-second (``time.process_time``); the table
gives each variant's median over the rounds and its ratio to pythae's step measured in the same
rounds. NLL is not measured here (``benchmarks/models.py`` does that): this isolates speed.

Variants (each one change against aekit's default step, batch 128, float32):
- ``bf16``: ``--cpu-bf16`` (bfloat16 autocast; the weights are cast every step);
- ``batch N``: a larger batch (alone and with bf16);
- ``compiled``: ``torch.compile`` of the model's loss (inductor; its compile time is reported apart);
- ``bf16 weights``: a bfloat16 copy of the model for the forward and backward, float32 master weights
  for Adam (no autocast casts; the loss itself is then summed in bfloat16, so this times the step
  only: it is not a training mode aekit offers).

Also prints the multiply-add rate the step's matrix products reach, against this core's measured
peak for a large product in float32 and bfloat16.

Run: ``.venv/bin/python benchmarks/vae_step_speed.py [--rounds 5] [--steps 40] [--variants ...]``
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from models import HIDDEN, LATENT_DIM, model_settings  # benchmarks/models.py

from aekit.config import TrainConfig
from aekit.data.batches import Batch
from aekit.data.sources import load_dataset
from aekit.models import build_model
from aekit.training import allocator
from aekit.training.trainer import Trainer


def train_flop(sizes: list[int]) -> float:
    """FLOP of one training sample through dense layers ``sizes`` (forward, weight and input gradients;
    the first layer needs no input gradient)."""
    macs = [a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    return 2 * (3 * sum(macs) - macs[0])


def peak(dtype: torch.dtype) -> float:
    """GFLOP/s of a 512x784 @ 784x256 product on this thread."""
    a, b = torch.randn(512, 784).to(dtype), torch.randn(784, 256).to(dtype)
    for _ in range(5):
        a @ b
    start = time.process_time()
    for _ in range(200):
        a @ b
    return 2 * 512 * 784 * 256 * 200 / (time.process_time() - start) / 1e9


def product_rates(batch: int = 128) -> None:
    """GFLOP/s of each matrix product of a training step at ``batch``, alone in a loop, in float32 and
    bfloat16: forward (B x in @ in x out), input gradient (B x out @ out x in), weight gradient
    (out x B @ B x in), for every layer of the encoder and decoder."""
    layers = [(784, 256), (256, 128), (128, 64), (32, 128), (128, 256), (256, 784)]
    print(f"\n| product at batch {batch} (m x k @ k x n) | float32 GFLOP/s | bfloat16 GFLOP/s |")
    print("|---|---:|---:|")
    total = [0.0, 0.0]  # ms of all the step's products, float32 and bfloat16
    for a, b in layers:
        shapes = [("forward", batch, a, b), ("weight gradient", b, batch, a)]
        if a != 784:  # the first layer needs no input gradient
            shapes.insert(1, ("input gradient", batch, b, a))
        for what, m, k, n in shapes:
            rates = []
            for dtype in (torch.float32, torch.bfloat16):
                x, w = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
                for _ in range(5):
                    x @ w
                reps = max(20, int(2e9 / (2 * m * k * n)))
                start = time.process_time()
                for _ in range(reps):
                    x @ w
                rates.append(2 * m * k * n * reps / (time.process_time() - start) / 1e9)
                total[len(rates) - 1] += 2 * m * k * n / rates[-1] / 1e6
            print(f"| {a}->{b} {what} ({m} x {k} @ {k} x {n}) | {rates[0]:.0f} | {rates[1]:.0f} |")
    print(f"\nall products of one step at these rates: {total[0]:.2f} ms float32, {total[1]:.2f} ms bfloat16")
    # the optimizer step over the VAE's 480,848 parameters: aekit's fused Adam against pythae's default
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(a, b)) for a, b in layers] + [
        torch.nn.Parameter(torch.randn(b)) for _, b in layers
    ]
    for p in params:
        p.grad = torch.randn_like(p)
    for name, opt in (
        ("fused (aekit)", torch.optim.Adam(params, lr=1e-3, fused=True)),
        ("default, as pythae builds it", torch.optim.Adam(params, lr=1e-3)),
    ):
        for _ in range(5):
            opt.step()
        start = time.process_time()
        for _ in range(100):
            opt.step()
        print(f"Adam step, {name}: {(time.process_time() - start) * 10:.2f} ms")


class Runner:
    """One variant: a step function over a batch size; ``setup_s`` is its one-off cost (compilation)."""

    def __init__(self, name: str, batch: int, step, setup_s: float = 0.0) -> None:
        self.name, self.batch, self.step, self.setup_s = name, batch, step, setup_s
        self.rates: list[float] = []


def aekit_runner(name, train, args, batch=128, bf16=False, compiled=False, step=False, kind="vae") -> Runner:
    torch.manual_seed(0)
    model = build_model(kind, model_settings(kind, train))
    cfg = TrainConfig(
        epochs=1, batch_size=batch, lr=1e-3, val_fraction=0, device="cpu", cpu_bf16=bf16, compile_step=step
    )
    trainer = Trainer(model, cfg)
    model.train()
    setup = 0.0
    if step:  # --compile-step: the first step compiles
        start = time.process_time()
        x, y = train.take(torch.arange(batch))
        for _ in range(2):
            trainer.train_step(Batch(x, y))
        setup = time.process_time() - start
        if not trainer._compiled:
            raise SystemExit(f"{name}: the compiled step did not apply")
    if compiled:
        start = time.process_time()
        model.loss = torch.compile(model.loss)  # the instance's attribute: the trainer calls it
        x, y = train.take(torch.arange(batch))
        for _ in range(3):  # compiles (and recompiles for the steps counter) here, not in the timing
            trainer.train_step(Batch(x, y))
        setup = time.process_time() - start
    return Runner(name, batch, trainer.train_step, setup)


def bf16_weights_runner(name, train, args, batch=128) -> Runner:
    """A bfloat16 copy of the model runs the forward and backward (no casts inside the step); the
    float32 master weights take the Adam step and are copied back into it (mixed precision by hand)."""
    torch.manual_seed(0)
    master = build_model("vae", model_settings("vae", train))
    work = copy.deepcopy(master).to(torch.bfloat16).train()
    params, wparams = list(master.parameters()), list(work.parameters())
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)

    def step(b: Batch) -> None:
        terms = work.loss(Batch(b.x.to(torch.bfloat16), b.y))
        for w in wparams:
            w.grad = None
        terms["loss"].backward()
        for p, w in zip(params, wparams, strict=True):
            p.grad = w.grad.float()
        opt.step()
        with torch.no_grad():
            torch._foreach_copy_(wparams, params)
        float(terms["loss"])

    return Runner(name, batch, step)


def pythae_runner(train, args, batch=128) -> Runner:
    from pythae.data.datasets import DatasetOutput
    from pythae_vae import pythae_model  # benchmarks/pythae_vae.py

    torch.manual_seed(0)
    model = pythae_model("vae", tuple(train.shape), args)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)  # what pythae's BaseTrainer builds

    def step(b: Batch) -> None:  # pythae's BaseTrainer.train_step, less its logging
        out = model(DatasetOutput(data=b.x), epoch=1, dataset_size=len(train), uses_ddp=False)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        float(out.loss)

    return Runner("pythae VAE step", batch, step)


GROUPS = {  # torch.profiler op names -> where a step's time goes
    "matrix products": ("aten::mm", "aten::addmm", "aten::bmm"),
    "optimizer (Adam, zero_grad)": (
        "aten::_fused_adam_",
        "Optimizer.step#Adam.step",
        "Optimizer.zero_grad#Adam.zero_grad",
    ),
    "dtype casts (copies)": ("aten::copy_", "aten::_to_copy", "aten::to", "aten::empty_strided"),
}


def profile_split(train, args, steps: int = 30) -> None:
    """Self CPU time of a step's operations, grouped, under torch.profiler (which inflates small
    operations; a relative picture), for float32 and bf16 autocast at batch 128 and bf16 at 512."""
    from torch.profiler import ProfilerActivity, profile

    print(
        "\n| share of a step's self CPU time (torch.profiler) "
        "| fp32, batch 128 | bf16, batch 128 | bf16, batch 512 |"
    )
    print("|---|---:|---:|---:|")
    shares: dict[str, list[float]] = {
        g: [] for g in [*GROUPS, "everything else (loss, activations, autograd, Python)"]
    }
    for batch, bf16 in ((128, False), (128, True), (512, True)):
        run = aekit_runner("", train, args, batch=batch, bf16=bf16)
        batches = [Batch(*train.take(torch.arange(i * batch, (i + 1) * batch))) for i in range(steps)]
        for b in batches[:5]:
            run.step(b)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for b in batches:
                run.step(b)
        times = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
        total = sum(times.values())
        for group, names in GROUPS.items():
            shares[group].append(sum(times.get(n, 0.0) for n in names) / total)
        shares[list(shares)[-1]].append(1 - sum(shares[g][-1] for g in GROUPS))
    for group, values in shares.items():
        print(f"| {group} | " + " | ".join(f"{v:.0%}" for v in values) + " |")


PRODUCTS = ("aten::mm", "aten::addmm", "aten::bmm", "aoti_torch_cpu_mm_out", "aoti_torch_cpu_addmm_out")


def op_table(runner: Runner, train, steps: int = 50, top: int = 30) -> None:
    """Where one variant's step goes, op by op: self CPU time per step under torch.profiler (which
    inflates small operations), by operation and input shape; inductor's kernels by name."""
    from torch.profiler import ProfilerActivity, profile

    batches = [
        Batch(*train.take(torch.arange(i * runner.batch, (i + 1) * runner.batch))) for i in range(steps)
    ]
    for b in batches[:5]:
        runner.step(b)
    start = time.process_time()
    for b in batches:
        runner.step(b)
    plain = (time.process_time() - start) / steps * 1e3
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for b in batches:
            runner.step(b)
    rows = []
    for e in prof.key_averages(group_by_input_shape=True):
        shapes = " x ".join(str(tuple(s)) for s in e.input_shapes if s) if e.key.startswith("aten") else ""
        rows.append((e.self_cpu_time_total / steps / 1e3, e.count / steps, e.key, shapes))
    total = sum(r[0] for r in rows)
    products = sum(r[0] for r in rows if r[2] in PRODUCTS)
    kernels = sum(r[0] for r in rows if r[2].startswith("graph_") or "cpp_fused" in r[2])
    print(f"\n{runner.name}: {plain:.2f} ms a step unprofiled, {total:.2f} ms under the profiler, of which")
    print(f"matrix products {products:.2f} ms, inductor's fused kernels {kernels:.2f} ms, ")
    print(f"everything else (framework, Python, other ops) {total - products - kernels:.2f} ms")
    print("\n| ms a step | calls a step | operation | input shapes |")
    print("|---:|---:|---|---|")
    for ms, calls, key, shapes in sorted(rows, reverse=True)[:top]:
        print(f"| {ms:.3f} | {calls:g} | {key[:70]} | {shapes[:60]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40, help="steps of each variant per round")
    names = [
        "fp32",
        "bf16",
        "batch 256",
        "batch 512",
        "batch 256, bf16",
        "batch 512, bf16",
        "batch 1024, bf16",
        "compiled",
        "compiled, bf16",
        "batch 512, compiled, bf16",
        "bf16 weights",
        "batch 512, bf16 weights",
        "compile-step",
        "compile-step, bf16",
        "batch 256, compile-step, bf16",
    ]
    parser.add_argument("--variants", nargs="+", default=names, choices=names)
    parser.add_argument("--no-profile", action="store_true", help="skip the profiler's split of a step")
    parser.add_argument("--products-only", action="store_true", help="only the rate of each matrix product")
    parser.add_argument(
        "--ops",
        choices=names,
        help="only the op-by-op profile of this variant's step (inductor's kernels named; a run of its own)",
    )
    args = parser.parse_args()
    args.latent_dim, args.hidden = LATENT_DIM, HIDDEN  # pythae's model, at the benchmark's sizes
    torch.set_num_threads(1)
    # aekit's CPU trainer sets up malloc (aekit.training.allocator); set here, before either library
    # trains, so that pythae runs under the same allocator
    print(f"malloc set up for reuse (aekit.training.allocator), for both: {allocator.keep_freed_memory()}")
    if args.products_only:
        product_rates()
        return
    train = load_dataset("fashion-mnist", "train")

    def make(variant: str) -> Runner:
        parts = variant.split(", ")
        batch = int(parts[0].split()[1]) if parts[0].startswith("batch") else 128
        bf16, compiled, step = "bf16" in parts, "compiled" in parts, "compile-step" in parts
        if "bf16 weights" in parts:
            return bf16_weights_runner(f"aekit {variant}", train, args, batch=batch)
        return aekit_runner(
            f"aekit {variant}", train, args, batch=batch, bf16=bf16, compiled=compiled, step=step
        )

    if args.ops:
        from torch._inductor import config as inductor_config

        inductor_config.cpp.enable_kernel_profile = True  # each fused kernel under its own name
        op_table(make(args.ops), train)
        return
    runners = [pythae_runner(train, args)] + [make(v) for v in args.variants]
    g = torch.Generator().manual_seed(0)
    for r in range(args.rounds):
        for run in runners:
            order = torch.randperm(len(train), generator=g)
            batches = [train.take(order[i * run.batch : (i + 1) * run.batch]) for i in range(args.steps + 2)]
            for x, y in batches[:2]:
                run.step(Batch(x, y))
            start = time.process_time()
            for x, y in batches[2:]:
                run.step(Batch(x, y))
            run.rates.append(run.batch * args.steps / (time.process_time() - start))
        print(
            f"round {r + 1}: " + ", ".join(f"{run.name} {run.rates[-1]:,.0f}" for run in runners), flush=True
        )
    flop = train_flop([784, 256, 128, 64]) + train_flop([32, 128, 256, 784])
    fp32, bf16 = peak(torch.float32), peak(torch.bfloat16)
    base = runners[0].rates
    print(f"\n{flop / 1e6:.2f} MFLOP of matrix products per training sample; this core's peak for a")
    print(f"512x784x256 product: {fp32:.0f} GFLOP/s float32, {bf16:.0f} GFLOP/s bfloat16 (one thread)")
    print(
        "\n| step | batch | samples per CPU-s (median) | vs pythae's step (same rounds) | GFLOP/s "
        "| one-off set-up |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for run in runners:
        ratio = statistics.median(a / b for a, b in zip(run.rates, base, strict=True))
        med = statistics.median(run.rates)
        setup = f"{run.setup_s:.1f} CPU-s" if run.setup_s else ""
        print(f"| {run.name} | {run.batch} | {med:,.0f} | {ratio:.2f}x | {med * flop / 1e9:.0f} | {setup} |")
    print(
        f"\n3x pythae's step needs {3 * statistics.median(base) * flop / 1e9:.0f} GFLOP/s of matrix products"
    )
    if not args.no_profile:
        profile_split(train, args)


if __name__ == "__main__":
    main()
