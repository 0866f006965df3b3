"""Tables, embeddings and export: mixed-type CSV, the scikit-learn transformer, aekit embed, ONNX."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import check_estimator

import aekit
from aekit.apps.export import export_onnx
from aekit.cli import main
from aekit.data.tabular import read_csv
from aekit.errors import DataError

PETS = """weight,colour,legs,age
4.1,black,4,3
30.5,brown,4,7
0.2,green,6,
5.0,black,4,2
,white,2,1
28.0,brown,4,9
0.3,green,6,1
4.4,white,4,5
"""


@pytest.fixture
def pets(tmp_path):
    path = tmp_path / "pets.csv"
    rows = PETS.strip().splitlines()
    path.write_text("\n".join(rows + rows[1:] * 12) + "\n")  # 8 rows repeated: enough to train on
    return path


def test_mixed_csv_numeric_scaled_categorical_one_hot_missing_by_choice(pets):
    with pytest.raises(DataError, match=r"pets.csv: row 4, column 'age' is empty .*--missing"):
        read_csv(pets)
    data = read_csv(pets, missing="impute")
    schema = data.schema
    assert [c.kind for c in schema.columns] == ["numeric", "categorical", "numeric", "numeric"]
    assert schema.blocks == (4,) and data.shape == (3 + 4,)
    x = data.take(torch.arange(len(data)))[0].numpy()
    assert x[:, :3].min() == 0 and x[:, :3].max() == 1
    assert (x[:, 3:].sum(1) == 1).all()  # one category per row
    assert schema.feature_names()[3:] == ["colour=black", "colour=brown", "colour=green", "colour=white"]
    assert read_csv(pets, missing="drop").shape == data.shape and len(read_csv(pets, missing="drop")) < len(
        data
    )
    weight = next(c for c in schema.columns if c.name == "weight")
    assert weight.fill == pytest.approx(4.4)  # the median of the filled weights
    rows = schema.decode(x[:2])
    assert rows[0][1] == "black" and rows[0][0] == pytest.approx(4.1, abs=1e-4)


def test_new_tables_are_encoded_as_in_training(pets, tmp_path):
    schema = read_csv(pets, missing="impute").schema
    new = tmp_path / "new.csv"
    new.write_text("weight,colour,legs,age\n100,white,4,3\n")
    x = read_csv(new, schema=schema).take(torch.arange(1))[0].numpy()[0]
    assert x[0] > 1  # beyond the training range: scaled by the training scale, not its own
    assert list(x[3:]) == [0, 0, 0, 1]
    new.write_text("weight,colour,legs,age\n1,purple,4,3\n")
    with pytest.raises(
        DataError, match="row 2, column 'colour' holds 'purple', a category the model never saw"
    ):
        read_csv(new, schema=schema)
    new.write_text("weight,legs,age\n1,4,3\n")
    with pytest.raises(DataError, match="not the ones the model was trained on"):
        read_csv(new, schema=schema)


def test_cli_trains_the_tabular_model_and_embeds_with_the_saved_encoding(pets, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--data", str(pets), "--missing", "impute", "--epochs", "30", "--latent-dim", "2"]
    assert main([*argv, "--batch-size", "16", "--lr", "0.01", "--out", str(run), "--quiet"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["name"] == "tabular" and config["model"]["categories"] == [4]
    assert (
        config["data"]["missing"] == "impute"
        and config["dataset"]["schema"]["columns"][1]["kind"] == "categorical"
    )
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert history[-1]["train/loss"] < history[0]["train/loss"]
    assert history[-1]["train/category_accuracy"] > 0.6
    out = tmp_path / "codes.csv"
    assert main(["embed", str(run), str(pets), "-o", str(out)]) == 0
    with open(out) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", "z0", "z1"] and len(rows) == 1 + 8 * 13
    strange = tmp_path / "strange.csv"
    strange.write_text("weight,colour,legs,age\n1,purple,4,3\n")
    assert main(["embed", str(run), str(strange), "-o", str(tmp_path / "s.csv")]) == 2
    assert "purple" in capsys.readouterr().err and not (tmp_path / "s.csv").exists()


def test_embed_carries_ids_and_labels(tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            ["train", "--data", "digits", "--epochs", "1", "--latent-dim", "3", "--out", str(run), "--quiet"]
        )
        == 0
    )
    assert main(["embed", str(run), "digits", "--limit", "50", "-o", str(tmp_path / "c.npz")]) == 0
    z = np.load(tmp_path / "c.npz")
    assert z["codes"].shape == (50, 3) and z["labels"].shape == (50,) and len(z["ids"]) == 50
    want = aekit.load(run).encode(aekit.load_dataset("digits", "test", limit=50))
    np.testing.assert_allclose(z["codes"], want, rtol=1e-6)
    assert main(["embed", str(run), "digits", "--limit", "5", "-o", str(tmp_path / "c.csv")]) == 0
    with open(tmp_path / "c.csv") as f:
        header, first = next(csv.reader(f)), None
    assert header == ["id", "label", "z0", "z1", "z2"]
    assert main(["embed", str(run), "digits", "-o", str(tmp_path / "c.csv")]) == 2  # exists: kept
    assert "already exists" in capsys.readouterr().err
    del first


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return X, y


def test_transformer_round_trip_and_determinism(cancer):
    X, _ = cancer
    t = aekit.AutoencoderTransformer(latent_dim=6, epochs=60, random_state=3).fit(X)
    z = t.transform(X)
    assert z.shape == (len(X), 6) and z.dtype == X.dtype
    back = t.inverse_transform(z)
    assert back.shape == X.shape
    scaled_err = (((back - X) / t.span_) ** 2).mean()
    baseline = (((X.mean(0) - X) / t.span_) ** 2).mean()
    assert scaled_err < baseline / 4  # far better than predicting the column means
    assert t.score(X) == pytest.approx(-scaled_err, rel=0.05)
    again = aekit.AutoencoderTransformer(latent_dim=6, epochs=60, random_state=3).fit(X)
    np.testing.assert_array_equal(again.transform(X), z)
    assert list(t.get_feature_names_out()) == [f"autoencodertransformer{i}" for i in range(6)]


def test_transformer_in_a_pipeline_and_grid_search(cancer):
    X, y = cancer
    pipe = make_pipeline(
        aekit.AutoencoderTransformer(latent_dim=4, epochs=30), LogisticRegression(max_iter=2000)
    )
    assert pipe.fit(X, y).score(X, y) > 0.85
    search = GridSearchCV(aekit.AutoencoderTransformer(epochs=60), {"latent_dim": [1, 8]}, cv=2).fit(X)
    assert search.best_params_["latent_dim"] == 8  # a larger code reconstructs better


def test_transformer_passes_scikit_learns_checks():
    results = check_estimator(aekit.AutoencoderTransformer(epochs=3), on_fail=None)
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    assert failed == []
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert skipped <= {"check_array_api_input"}
    assert len(results) > 40


@pytest.mark.parametrize("model", ["dense", "conv", "vae"])
def test_onnx_export_matches_pytorch(model, tmp_path):
    import onnxruntime

    run_dir = tmp_path / model
    assert (
        main(
            ["train", "--model", model, "--data", "digits", "--epochs", "1", "--out", str(run_dir), "--quiet"]
        )
        == 0
    )
    run = aekit.load(run_dir)
    x = aekit.load_dataset("digits", "test", limit=7)
    x = x.take(torch.arange(7))[0]
    for part in ("encoder", "decoder", "both"):
        path = tmp_path / f"{model}-{part}.onnx"
        assert export_onnx(run, path, part)["max_abs_diff"] < 1e-5
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        with torch.no_grad():
            z = run.model.encode(x)
            inputs, want = {
                "encoder": (x, z),
                "decoder": (z, run.model.decode(z)),
                "both": (x, run.model.decode(z)),
            }[part]
        got = session.run(None, {"input": inputs.numpy()})[0]
        np.testing.assert_allclose(got, want.numpy(), atol=1e-5)


def test_export_cli_and_refusals(tmp_path, capsys):
    run_dir = tmp_path / "cvae"
    assert (
        main(
            [
                "train",
                "--model",
                "cvae",
                "--data",
                "digits",
                "--epochs",
                "1",
                "--out",
                str(run_dir),
                "--quiet",
            ]
        )
        == 0
    )
    assert main(["export", str(run_dir), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "conditional" in capsys.readouterr().err and not (tmp_path / "m.onnx").exists()
