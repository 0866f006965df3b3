"""The hierarchical ("conductor") music VAE: shapes, bar boundaries, 16-bar MIDI out."""

from __future__ import annotations

import numpy as np
import pretty_midi
import pytest
import torch

from aekit.cli import main
from aekit.config import resolve
from aekit.data.music import FIRST_NOTE, HOLD, STEPS_PER_BAR, VOCAB, write_midi
from aekit.data.sources import load_dataset
from aekit.errors import ConfigError
from aekit.models import build_model
from aekit.training import checkpoint


def tiny(bars: int = 4):
    torch.manual_seed(0)
    return build_model(
        "music-conductor", input_shape=(bars * STEPS_PER_BAR,), hidden=32, embed=8, latent_dim=8, conductor=16
    ).eval()


def random_tokens(n: int, steps: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (n, steps), generator=torch.Generator().manual_seed(seed))


def test_conductor_shapes():
    model = tiny(4)
    z = torch.randn(3, 8)
    with torch.no_grad():
        assert model.bar_embeddings(z).shape == (3, 4, 8)
        assert model.bar_embeddings(z, 7).shape == (3, 7, 8)
        assert model._logits(z, random_tokens(3, 64)[..., None]).shape == (3, 64, 1, VOCAB)
        assert model.decode(z).shape == (3, 64)
        assert model.decode(z, bars=16).shape == (3, 256)  # the conductor runs on past its training length
    with pytest.raises(ConfigError, match="whole bars"):
        build_model("music-conductor", input_shape=(40,))


def test_each_bar_starts_afresh_after_the_previous_bars_last_token():
    model = tiny(4)
    z = torch.randn(2, 8)
    tokens = random_tokens(2, 64)
    changed = tokens.clone()
    changed[:, 16:31] = random_tokens(2, 15, seed=1)  # bar 2 but its last step
    with torch.no_grad():
        a, b = model._logits(z, tokens[..., None]), model._logits(z, changed[..., None])
    assert not torch.allclose(a[:, 17:31], b[:, 17:31])  # inside bar 2: it sees its own tokens
    torch.testing.assert_close(a[:, 32:], b[:, 32:])  # bars 3 and 4 see only their embedding and step 31
    changed[:, 31] = (tokens[:, 31] + 1) % VOCAB
    with torch.no_grad():
        c = model._logits(z, changed[..., None])
    assert not torch.allclose(a[:, 32], c[:, 32])  # bar 3's first step follows bar 2's last token
    torch.testing.assert_close(a[:, 48:], c[:, 48:])  # bar 4 does not


def test_greedy_decoding_agrees_with_teacher_forcing():
    model = tiny(4)
    z = torch.randn(5, 8)
    with torch.no_grad():
        tokens = model.decode(z).long()
        logits = model._logits(z, tokens[..., None])
    assert torch.equal(logits.argmax(-1)[..., 0], tokens)  # the same factorisation, bar boundaries included


def test_midi_with_tempo_and_program_has_the_asked_bars(tmp_path):
    tokens = np.full(16 * STEPS_PER_BAR, HOLD, dtype=np.uint8)
    tokens[::STEPS_PER_BAR] = FIRST_NOTE + 24  # a whole note every bar
    pm = pretty_midi.PrettyMIDI(str(write_midi(tmp_path / "a.mid", tokens, tempo=120, program=40)))
    assert pm.instruments[0].program == 40 and len(pm.instruments[0].notes) == 16
    assert pm.get_end_time() == pytest.approx(16 * 4 * 60 / 120)  # 16 bars of 4 beats at 120 bpm
    assert pm.get_tempo_changes()[1][0] == pytest.approx(120)


def _song(path, bars: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst, t, step = pretty_midi.Instrument(0), 0, 0.125
    while t < bars * STEPS_PER_BAR:
        length = int(rng.choice([2, 4, 8]))
        inst.notes.append(
            pretty_midi.Note(90, int(rng.choice([60, 62, 64, 65, 67])), t * step, (t + length) * step)
        )
        t += length
    pm.instruments.append(inst)
    pm.write(str(path))


def test_16_bar_segments_and_cli_writes_16_bar_midi(tmp_path):
    songs = tmp_path / "songs"
    songs.mkdir()
    for i in range(2):
        _song(songs / f"s{i}.mid", 20, seed=i)
    data = load_dataset(f"midi-16bars:{songs}")
    assert data.shape == (16 * STEPS_PER_BAR,) and len(data) == 2 * 5  # a segment starts at every bar
    run = tmp_path / "run"  # an untrained model saved as a run: generation only needs the weights
    settings = {"name": "music-conductor", "hidden": 32, "embed": 8, "latent_dim": 8, "conductor": 16}
    config = resolve(
        [{"model": settings, "data": {"source": f"midi-16bars:{songs}"}}], input_shape=data.shape
    )
    checkpoint.write_config(run, config, data.describe())
    checkpoint.save_weights(run, build_model("music-conductor", config.model_config))
    out = tmp_path / "gen"
    argv = ["generate", str(run), "--music", "--bars", "16", "-n", "2", "--seed", "3", "--temperature", "1.0"]
    assert main([*argv, "--tempo", "120", "--program", "40", "-o", str(out)]) == 0
    for mid in sorted(out.glob("*.mid")):
        pm = pretty_midi.PrettyMIDI(str(mid))
        assert pm.instruments[0].program == 40
        assert 15 * 2.0 < pm.get_end_time() <= 16 * 2.0 + 1e-6  # 16 bars of 2 s at 120 bpm
    assert main(["generate", str(run), "--music", "--bars", "0", "-o", str(tmp_path / "x")]) == 2
