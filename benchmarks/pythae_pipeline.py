"""Does pythae's TrainingPipeline learn faster than a plain Adam loop on the same model? (A check of
last session's open lead, which reported 401 vs 472 nats after 8 steps.)

pythae's VAE with aekit's dense sizes (benchmarks/pythae_vae.py), 1,000 Fashion-MNIST training
images, one epoch at batch 128 (8 Adam steps, lr 1e-3), trained (a) by pythae's TrainingPipeline and
(b) by a plain loop (same initial weights, batch order shuffled by a generator seeded like pythae's
seed 8); both scored by aekit's importance-weighted estimator (10 samples) on 500 test images.

Run: ``.venv/bin/python benchmarks/pythae_pipeline.py`` (a few CPU-seconds)
"""

from __future__ import annotations

import logging
import tempfile
import types

import torch
from pythae.pipelines import TrainingPipeline
from pythae.trainers import BaseTrainerConfig

from aekit.data.sources import load_dataset


def main() -> None:
    import pythae_vae as pv  # benchmarks/pythae_vae.py

    torch.set_num_threads(1)
    logging.getLogger("pythae").setLevel(logging.WARNING)
    x = load_dataset("fashion-mnist", "train").take(torch.arange(1000))[0]
    xt = load_dataset("fashion-mnist", "test").take(torch.arange(500))[0]
    args = types.SimpleNamespace(latent_dim=32, hidden=(256, 128), iw_train_samples=5)

    def fresh():
        torch.manual_seed(0)
        return pv.pythae_model("vae", tuple(x.shape[1:]), args)

    piped = fresh()
    with tempfile.TemporaryDirectory() as out:
        cfg = BaseTrainerConfig(
            output_dir=out,
            num_epochs=1,
            learning_rate=1e-3,
            per_device_train_batch_size=128,
            per_device_eval_batch_size=128,
            no_cuda=True,
        )
        pipe = TrainingPipeline(model=piped, training_config=cfg)
        pipe(train_data=x)
        steps = [int(s["step"]) for s in pipe.trainer.optimizer.state.values()][0]
    plain = fresh()
    opt = torch.optim.Adam(plain.parameters(), lr=1e-3)
    plain.train()
    for idx in torch.randperm(len(x), generator=torch.Generator().manual_seed(8)).split(128):
        loss = plain({"data": x[idx]}).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    for label, model, n in (("pythae TrainingPipeline", piped, steps), ("plain Adam loop", plain, 8)):
        model.eval()
        torch.manual_seed(0)
        print(f"{label}: {n} optimizer steps, NLL {pv.iw_nll(model, xt, 10):.1f} nats")


if __name__ == "__main__":
    main()
