"""Training speed: the chapter's loop against aekit's, same model, full Fashion-MNIST.

The chapter's loop is the torchvision pattern: a per-sample Dataset that turns each
uint8 image into a PIL image and then into a float tensor (what ``ToTensor`` does),
batched by a DataLoader of 64. aekit cuts batches straight from one uint8 tensor.

Both train the classic 784-128-64-32 model (Adam, MSE). The chapter trains 5 epochs at
batch 64, lr 1e-3; its final test MSE is the target. aekit trains with the settings
below (by default a one-cycle schedule over 3 epochs) until its test MSE reaches that
target, checked every quarter epoch with the clock stopped.

Run: ``.venv/bin/python benchmarks/train_speed.py [--epochs 5] [--batch-size 256 --lr 3e-3]``

``--end-to-end`` instead times one ``aekit train`` from the shell, as a user sees it, and splits its
wall time into parts: interpreter start, imports, data loading, trainer set-up, training steps,
checkpoints, figures, report.html (see :func:`end_to_end`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from aekit.config import TrainConfig, preset_layer, resolve
from aekit.data.sources import load_dataset
from aekit.models import build_model
from aekit.training.trainer import Trainer

FLOP_PER_SAMPLE = 1.33e6  # multiply-adds x2 of 784-128-64-32-64-128-784, forward + backward


class ChapterDataset(Dataset):
    """One sample at a time, through PIL, like torchvision's MNIST with ToTensor."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img = Image.fromarray(self.images[i], mode="L")
        t = torch.from_numpy(np.array(img, np.uint8, copy=True)).view(28, 28, 1).permute(2, 0, 1).contiguous()
        return t.float().div(255), 0


def seed_model(seed: int = 0):
    torch.manual_seed(seed)
    config = resolve([preset_layer("seed")], input_shape=(1, 28, 28))
    return build_model(config.model, config.model_config)


@torch.no_grad()
def test_mse(model, x_test: torch.Tensor) -> float:
    model.eval()
    err = sum(float(((model(xb).x_hat - xb) ** 2).sum()) for xb in x_test.split(2000))
    model.train()
    return err / x_test.numel()


def chapter(images: np.ndarray, x_test: torch.Tensor, epochs: int) -> tuple[list[float], list[float], int]:
    model = seed_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(ChapterDataset(images), batch_size=64, shuffle=True)
    times, mses, elapsed = [], [], 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        for xb, _ in loader:
            loss = torch.nn.functional.mse_loss(model(xb).x_hat, xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        elapsed += time.perf_counter() - start
        times.append(elapsed)
        mses.append(test_mse(model, x_test))
    return times, mses, len(images) * epochs


class Clock:
    """A callback that measures the test MSE every quarter epoch with the clock stopped,
    and stops training at the target."""

    def __init__(self, x_test: torch.Tensor, target: float, checks_per_epoch: int = 4) -> None:
        self.x_test, self.target, self.checks = x_test, target, checks_per_epoch
        self.times: list[float] = []
        self.mses: list[float] = []
        self.epochs: list[float] = []

    def on_fit_start(self, trainer) -> None:
        self.elapsed, self.start = 0.0, time.perf_counter()
        self.every = max(1, trainer.batches_per_epoch // self.checks)
        self.reached = False

    def on_batch_end(self, trainer, terms) -> None:
        if self.reached or trainer.step % self.every:
            return
        self.elapsed += time.perf_counter() - self.start
        self.times.append(self.elapsed)
        self.mses.append(test_mse(trainer.model, self.x_test))
        self.epochs.append(trainer.step / trainer.batches_per_epoch)
        self.reached = self.mses[-1] <= self.target
        self.start = time.perf_counter()

    def on_epoch_end(self, trainer, record) -> None:
        trainer.should_stop = self.reached


def matmul_gflops(n: int = 1024, repeat: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeat):
        torch.mm(a, b)
    return 2 * n**3 * repeat / (time.perf_counter() - start) / 1e9


E2E_COMMAND = ["train", "--preset", "seed", "--data", "fashion-mnist", "--epochs", "2"]

# Runs in a fresh interpreter: the real `aekit train` (cli.main), with each phase's functions wrapped
# in timers. Phases: imports up to the CLI, data loading, trainer set-up (optimizers), training steps
# (with validation), checkpoints (weights, resume state, metrics log), figures (after training until
# the report starts) and report.html; "other" is what is left (config, model, run directory, prints).
_E2E_SCRIPT = r"""
import time, sys, json
t0_wall = time.time(); t0 = time.perf_counter(); c0 = time.process_time()
import aekit.cli
t_cli, c_cli = time.perf_counter(), time.process_time()
import aekit.api, aekit.training.callbacks as cb, aekit.training.trainer as tr, aekit.report.html as rh
t_api, c_api = time.perf_counter(), time.process_time()
parts = {k: 0.0 for k in ("data loading", "trainer set-up", "fit", "checkpoints", "report.html")}
cpu = dict(parts)
marks = {}
def timed(owner, name, part, mark=None):
    fn = getattr(owner, name)
    def wrapper(*a, **k):
        start, cstart = time.perf_counter(), time.process_time()
        try:
            return fn(*a, **k)
        finally:
            parts[part] += time.perf_counter() - start
            cpu[part] += time.process_time() - cstart
            if mark:
                marks[mark], marks[mark + " cpu"] = time.perf_counter(), time.process_time()
                marks[mark + " start"], marks[mark + " cpu start"] = start, cstart
    setattr(owner, name, wrapper)
timed(aekit.api, "load_dataset", "data loading")
timed(tr.Trainer, "__init__", "trainer set-up")
timed(tr.Trainer, "fit", "fit", mark="fit")
for cls, names in ((cb.Checkpointer, ("on_epoch_end", "on_fit_end")), (cb.MetricsLog, ("on_epoch_end",))):
    for name in names:
        timed(cls, name, "checkpoints")
timed(rh, "write_report", "report.html", mark="report")
code = aekit.cli.main(sys.argv[1:])
end, cend = time.perf_counter(), time.process_time()
for d in (parts, cpu):
    d["training steps"] = d.pop("fit") - d["checkpoints"]
parts["figures"] = marks["report start"] - marks["fit"]
cpu["figures"] = marks["report cpu start"] - marks["fit cpu"]
parts.update({"cli import": t_cli - t0, "api imports": t_api - t_cli, "in script": end - t0})
cpu.update({"cli import": c_cli - c0, "api imports": c_api - c_cli, "in script": cend - c0})
print(json.dumps({"code": code, "t0_wall": t0_wall, "wall": parts, "cpu": cpu}))
"""


def end_to_end(repeats: int = 0) -> None:
    """Time ``aekit train --preset seed --data fashion-mnist --epochs 2`` from the shell, split into parts.

    Prints the plain command's wall time (``python -m aekit ...``, nothing wrapped), then the same command
    run through :data:`_E2E_SCRIPT`, which times each phase; and the import cost of the heavy modules
    that the command imports along the way, each in a fresh interpreter.
    """
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    with tempfile.TemporaryDirectory() as tmp:
        walls = []
        for i in range(repeats):
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "aekit", *E2E_COMMAND, "--out", f"{tmp}/plain{i}"],
                env=env,
                capture_output=True,
                text=True,
            )
            walls.append(time.perf_counter() - start)
            assert done.returncode == 0, done.stderr
        launched, start = time.time(), time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _E2E_SCRIPT, *E2E_COMMAND, "--out", f"{tmp}/timed"],
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
        assert done.returncode == 0, done.stderr
        t = json.loads(done.stdout.strip().splitlines()[-1])
    start_up = t["t0_wall"] - launched
    w, c = t["wall"], t["cpu"]
    names = [
        ("import aekit.cli (parsing needs nothing more)", "cli import"),
        ("imports of the train path (torch, aekit.api)", "api imports"),
        ("data loading", "data loading"),
        ("trainer set-up (optimizer: imports torch._dynamo)", "trainer set-up"),
        ("training steps (2 epochs, with validation)", "training steps"),
        ("checkpoints + metrics log", "checkpoints"),
        ("figures (reconstructions, loss curves)", "figures"),
        ("report.html", "report.html"),
    ]
    rows = [("interpreter start", start_up, None)] + [(label, w[k], c[k]) for label, k in names]
    rows.append(
        (
            "other (config, model, run dir, exit)",
            wall - sum(r[1] for r in rows),
            c["in script"] - sum(c[k] for _, k in names),
        )
    )
    print(f"\n`aekit {' '.join(E2E_COMMAND)}`, wall time from the shell:")
    print(f"plain command: {', '.join(f'{x:.1f} s' for x in walls) or 'not run'}; timed run: {wall:.1f} s")
    print("(CPU: the process's own CPU seconds, all threads; steadier than wall time on a shared machine)\n")
    print("| part | wall s | share of wall | CPU s |")
    print("|---|---|---|---|")
    for name, seconds, cpu_seconds in rows:
        cpu_text = "" if cpu_seconds is None else f"{cpu_seconds:.2f}"
        print(f"| {name} | {seconds:.2f} | {seconds / wall:.0%} | {cpu_text} |")
    outside = wall - w["training steps"] - _import_time("torch", env)
    print(f"| **all but the training steps and the torch import** | **{outside:.2f}** | | |")
    print("\nImport cost of the heavy modules on this path (fresh interpreter each, after torch):\n")
    print("| module | seconds | imported by |")
    print("|---|---|---|")
    for module, by in (
        ("torch", "everything that computes"),
        ("torch._dynamo", "the first optimizer (torch.optim.Optimizer.__init__)"),
        ("matplotlib.pyplot", "figures"),
        ("sklearn.decomposition", "report.html's latent map (PCA)"),
    ):
        base = "torch" if module != "torch" else None
        print(f"| {module} | {_import_time(module, env, after=base):.2f} | {by} |")


def _import_time(module: str, env: dict[str, str], after: str | None = None) -> float:
    """Seconds to import ``module`` in a fresh interpreter (after importing ``after`` first)."""
    pre = f"import {after}; " if after else ""
    code = f"{pre}import time; s = time.perf_counter(); import {module}; print(time.perf_counter() - s)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs", type=int, default=5, help="chapter epochs (its final test MSE is the target)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="aekit batch size")
    parser.add_argument("--lr", type=float, default=5e-3, help="aekit peak learning rate")
    parser.add_argument("--schedule", default="onecycle", help="aekit learning-rate schedule")
    parser.add_argument("--throughput-batches", type=int, nargs="*", default=[64, 256, 1024])
    parser.add_argument(
        "--budget", type=int, default=3, help="aekit epochs the schedule spans (and the most it trains)"
    )
    parser.add_argument(
        "--end-to-end",
        action="store_true",
        help="only time `aekit train --preset seed --data fashion-mnist --epochs 2` from the shell, in parts",
    )
    parser.add_argument(
        "--repeats", type=int, default=0, help="--end-to-end: also time the plain command this many times"
    )
    args = parser.parse_args()
    if args.end_to_end:
        end_to_end(args.repeats)
        return

    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test")
    x_test = test.take(torch.arange(len(test)))[0]
    gflops = matmul_gflops()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; float32 matmul: {gflops:.1f} GFLOP/s"
    )

    c_times, c_mses, c_samples = chapter(train.x.numpy()[:, 0], x_test, args.epochs)
    target = c_mses[-1]
    print(f"chapter loop: {args.epochs} epochs in {c_times[-1]:.1f} s, test MSE {target:.5f} (the target)")

    model = seed_model()
    clock = Clock(x_test, target)
    cfg = TrainConfig(
        epochs=args.budget,
        batch_size=args.batch_size,
        lr=args.lr,
        schedule=args.schedule,
        val_fraction=0,
        device="cpu",
    )
    Trainer(model, cfg, [clock]).fit(train)
    a_epochs = clock.epochs[-1]
    reached = clock.reached
    a_rate = len(train) * a_epochs / clock.times[-1]
    c_rate = c_samples / c_times[-1]

    rows = [
        ("", "chapter loop", "aekit"),
        (
            "settings",
            "batch 64, Adam lr 1e-3",
            f"batch {args.batch_size}, Adam lr {args.lr:g} {args.schedule}",
        ),
        ("samples/s", f"{c_rate:,.0f}", f"{a_rate:,.0f}"),
        (
            "share of matmul rate",
            f"{c_rate * FLOP_PER_SAMPLE / 1e9 / gflops:.0%}",
            f"{a_rate * FLOP_PER_SAMPLE / 1e9 / gflops:.0%}",
        ),
        ("epochs to target MSE", f"{args.epochs}", f"{a_epochs:.2f}" + ("" if reached else " (not reached)")),
        ("test MSE", f"{target:.5f}", f"{clock.mses[-1]:.5f}"),
        ("time to target (s)", f"{c_times[-1]:.1f}", f"{clock.times[-1]:.1f}"),
        ("speed-up", "1.0x", f"{c_times[-1] / clock.times[-1]:.1f}x"),
    ]
    print()
    print(f"| {' | '.join(rows[0])} |")
    print("|---|---|---|")
    for row in rows[1:]:
        print(f"| {' | '.join(row)} |")

    print("\naekit's training throughput by batch size (one epoch each, same model):\n")
    print("| batch | samples/s | GFLOP/s | share of matmul rate |")
    print("|---|---|---|---|")
    for batch_size in args.throughput_batches:
        cfg = TrainConfig(epochs=1, batch_size=batch_size, val_fraction=0, device="cpu")
        start = time.perf_counter()
        Trainer(seed_model(), cfg).fit(train)
        rate = len(train) / (time.perf_counter() - start)
        flops = rate * FLOP_PER_SAMPLE / 1e9
        print(f"| {batch_size} | {rate:,.0f} | {flops:.0f} | {flops / gflops:.0%} |")


if __name__ == "__main__":
    main()
