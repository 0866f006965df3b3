"""Training speed: the chapter's loop against aekit's, same model, full Fashion-MNIST.

The chapter's loop is the torchvision pattern: a per-sample Dataset that turns each
uint8 image into a PIL image and then into a float tensor (what ``ToTensor`` does),
batched by a DataLoader of 64. aekit cuts batches straight from one uint8 tensor.

Both train the classic 784-128-64-32 model (Adam, MSE). The chapter trains 5 epochs at
batch 64, lr 1e-3; its final test MSE is the target. aekit trains with the settings
below until its test MSE reaches that target. Test MSE is measured after each epoch and
its time is not counted for either.

Run: ``.venv/bin/python benchmarks/train_speed.py [--epochs 5] [--batch-size 256 --lr 3e-3]``
"""

from __future__ import annotations

import argparse
import time

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
    """A callback that stops the clock while the test MSE is measured, and stops at the target."""

    def __init__(self, x_test: torch.Tensor, target: float) -> None:
        self.x_test, self.target = x_test, target
        self.times: list[float] = []
        self.mses: list[float] = []

    def on_fit_start(self, trainer) -> None:
        self.elapsed, self.start = 0.0, time.perf_counter()

    def on_epoch_end(self, trainer, record) -> None:
        self.elapsed += time.perf_counter() - self.start
        self.times.append(self.elapsed)
        self.mses.append(test_mse(trainer.model, self.x_test))
        if self.mses[-1] <= self.target:
            trainer.should_stop = True
        self.start = time.perf_counter()


def matmul_gflops(n: int = 1024, repeat: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeat):
        torch.mm(a, b)
    return 2 * n**3 * repeat / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs", type=int, default=5, help="chapter epochs (its final test MSE is the target)"
    )
    parser.add_argument("--batch-size", type=int, default=256, help="aekit batch size")
    parser.add_argument("--lr", type=float, default=3e-3, help="aekit learning rate")
    parser.add_argument("--max-epochs", type=int, default=20, help="aekit gives up after this many epochs")
    args = parser.parse_args()

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
        epochs=args.max_epochs, batch_size=args.batch_size, lr=args.lr, val_fraction=0, device="cpu"
    )
    Trainer(model, cfg, [clock]).fit(train)
    a_epochs = len(clock.times)
    reached = clock.mses[-1] <= target
    a_rate = len(train) * a_epochs / clock.times[-1]
    c_rate = c_samples / c_times[-1]

    rows = [
        ("", "chapter loop", "aekit"),
        ("settings", "batch 64, lr 1e-3", f"batch {args.batch_size}, lr {args.lr:g}"),
        ("samples/s", f"{c_rate:,.0f}", f"{a_rate:,.0f}"),
        (
            "share of matmul rate",
            f"{c_rate * FLOP_PER_SAMPLE / 1e9 / gflops:.0%}",
            f"{a_rate * FLOP_PER_SAMPLE / 1e9 / gflops:.0%}",
        ),
        ("epochs to target MSE", f"{args.epochs}", f"{a_epochs}" + ("" if reached else " (not reached)")),
        ("test MSE", f"{target:.5f}", f"{clock.mses[-1]:.5f}"),
        ("time to target (s)", f"{c_times[-1]:.1f}", f"{clock.times[-1]:.1f}"),
        ("speed-up", "1.0x", f"{c_times[-1] / clock.times[-1]:.1f}x"),
    ]
    print()
    print(f"| {' | '.join(rows[0])} |")
    print("|---|---|---|")
    for row in rows[1:]:
        print(f"| {' | '.join(row)} |")


if __name__ == "__main__":
    main()
