"""Tables, embeddings and export: mixed-type CSV, the scikit-learn transformer, aekit embed, ONNX."""

from __future__ import annotations

import contextlib
import csv
import io
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
from aekit.apps.anomaly import AnomalyDetector
from aekit.apps.export import export_onnx
from aekit.cli import main
from aekit.data.files import read_path
from aekit.data.tabular import Column, TableSchema, read_csv
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


# --- issue 16: ids, reconstructions, evaluation for tables; issue 15: fit/transform and fills ----------

SPECIES = ("cat", "dog", "horse")


def _animals(path, n: int = 120, seed: int = 0, gap: bool = False):
    """``id,age,weight,species``: a text id per row, a whole-number column, a real one, a category."""
    rng = np.random.default_rng(seed)
    lines = ["id,age,weight,species"]
    for i in range(n):
        k = int(rng.integers(3))
        weight = "" if gap and i == 0 else f"{5 + 20 * k + rng.normal():.2f}"
        lines.append(f"{'Z' if seed else 'A'}{i:04d},{int(rng.integers(1, 15))},{weight},{SPECIES[k]}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def animal_run(tmp_path_factory):
    """A tabular run on ``_animals`` (the id column detected), and what ``aekit train`` printed."""
    base = tmp_path_factory.mktemp("animals")
    table = _animals(base / "animals.csv")
    argv = ["train", "--data", str(table), "--missing", "impute", "--epochs", "30", "--latent-dim", "3"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main([*argv, "--batch-size", "32", "--lr", "0.02", "--out", str(base / "run"), "--quiet"])
    assert code == 0
    return base / "run", table, printed.getvalue()


def test_a_text_column_with_a_different_value_in_every_row_is_the_id_not_a_feature(tmp_path):
    data = read_csv(_animals(tmp_path / "a.csv"))
    assert data.schema.id_column == "id" and [c.name for c in data.schema.columns] == [
        "age",
        "weight",
        "species",
    ]
    assert data.shape == (2 + 3,)  # not 2 + 120 one-hot ids + 3
    assert data.ids[:2] == ("A0000", "A0001")
    new = read_csv(_animals(tmp_path / "new.csv", n=5, seed=1), schema=data.schema)  # ids never seen
    assert new.ids == ("Z0000", "Z0001", "Z0002", "Z0003", "Z0004") and new.shape == data.shape
    assert data.schema.notes() == ["column 'id' names the rows: used as their id, not as a feature"]
    assert TableSchema.from_dict(data.schema.to_dict()) == data.schema
    # a named id column (numbers here, so never detected) and a second identifier left out
    path = tmp_path / "named.csv"
    path.write_text("num,name,x\n" + "".join(f"{i * 7},n{i},{i % 3}\n" for i in range(12)))
    named = read_csv(path, id_column="num")
    assert named.schema.id_column == "num" and named.schema.excluded == ("name",) and named.shape == (1,)
    assert named.ids[:2] == ("0", "7") and "'name'" in named.schema.notes()[1]
    short = tmp_path / "short.csv"
    short.write_text("colour,x\nred,1\nblue,2\n")  # too short to call two different colours an id
    assert read_csv(short).schema.id_column is None


def test_cli_carries_the_id_to_scores_and_codes_and_says_what_it_left_out(animal_run, tmp_path):
    run, table, printed = animal_run
    assert "note: column 'id' names the rows: used as their id, not as a feature" in printed
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["input_shape"] == [5] and config["dataset"]["schema"]["id_column"] == "id"
    new = _animals(tmp_path / "new.csv", n=6, seed=1)
    assert main(["embed", str(run), str(new), "-o", str(tmp_path / "c.csv")]) == 0
    with open(tmp_path / "c.csv") as f:
        assert [r["id"] for r in csv.DictReader(f)] == [f"Z{i:04d}" for i in range(6)]
    det = tmp_path / "det"
    argv = ["detect", "fit", "--data", str(table), "--id-column", "id", "--epochs", "1", "--out", str(det)]
    assert main([*argv, "--quiet"]) == 0
    assert AnomalyDetector.load(det).run_.config.data.source == str(table)
    assert main(["detect", "score", str(det), str(new), "-o", str(tmp_path / "s.csv"), "--quiet"]) == 0
    with open(tmp_path / "s.csv") as f:
        assert [r["id"] for r in csv.DictReader(f)] == [f"Z{i:04d}" for i in range(6)]  # was empty


def test_reconstruct_writes_the_table_back_in_its_own_columns(animal_run, tmp_path):
    run, table, _ = animal_run
    out = tmp_path / "r.csv"
    assert main(["reconstruct", str(run), str(table), "-o", str(out)]) == 0
    with open(out) as f:
        rows = list(csv.DictReader(f))
    with open(table) as f:
        truth = list(csv.DictReader(f))
    assert list(rows[0]) == ["id", "age", "weight", "species"] and len(rows) == len(truth)
    assert [r["id"] for r in rows] == [r["id"] for r in truth]
    assert all(r["species"] in SPECIES and r["age"].isdigit() for r in rows)  # values, whole numbers
    weights = np.array([float(r["weight"]) for r in rows])
    want = np.array([float(r["weight"]) for r in truth])
    assert np.abs(weights - want).mean() < 0.25 * want.std()  # unscaled: in kilograms, near the truth
    right = np.mean([r["species"] == t["species"] for r, t in zip(rows, truth, strict=True)])
    assert right > 0.9


def test_evaluate_a_table_run_says_which_data_and_shows_table_metrics(animal_run, capsys):
    run, table, _ = animal_run
    assert main(["evaluate", str(run)]) == 0
    text = capsys.readouterr().out
    assert f"{table} (the whole file, 120 samples; the data this run trained on, not held out)" in text
    assert "category_accuracy" in text and "weight" in text and "psnr" not in text and "dB" not in text
    assert main(["evaluate", str(run), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert "psnr" not in metrics and metrics["species/accuracy"] > 0.9
    assert 0 < metrics["weight/mae"] < 5 and metrics["age/mae"] > 0  # in the column's units
    assert metrics["category_accuracy"] == metrics["species/accuracy"]  # one categorical column


def test_table_metrics_per_column():
    from aekit.evaluation.tables import table_metrics

    schema = TableSchema(
        (
            Column("w", "numeric", lo=10.0, span=20.0, fill=15.0),
            Column("c", "categorical", categories=("a", "b"), fill="a"),
        )
    )
    x = np.array([[0.0, 1, 0], [1.0, 0, 1]])
    x_hat = np.array([[0.1, 0.6, 0.4], [0.8, 0.7, 0.3]])
    m = table_metrics(schema, x, x_hat)
    assert m["w/mae"] == pytest.approx(0.15 * 20) and m["numeric_mae"] == pytest.approx(0.15)
    assert m["c/accuracy"] == 0.5 and m["category_accuracy"] == 0.5
    assert m["mse"] == pytest.approx(((x - x_hat) ** 2).mean())


def test_a_gap_in_new_data_gets_the_training_median_even_when_training_had_none(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,c\n" + "".join(f"{v},{v * 2},{'xy'[v % 2]}\n" for v in (1, 2, 3, 10)))
    schema = read_csv(path).schema  # no gap in training
    assert [c.fill for c in schema.columns] == [2.5, 5.0, "x"]  # medians; the most frequent category
    gap = tmp_path / "gap.csv"
    gap.write_text("a,b,c\n,4,\n")
    x = read_csv(gap, schema=schema, missing="impute").x.numpy()[0]
    np.testing.assert_allclose(x, [2.5, 4, 1, 0])  # raw values: 2.5 filled in (was 0.0)
    with pytest.raises(DataError, match=r"gap.csv: row 2, column 'a' is empty"):
        read_csv(gap, schema=schema)
    old = [{k: v for k, v in c.items() if k != "fill"} for c in schema.to_dict()["columns"]]
    legacy = TableSchema.from_dict({"columns": old})  # saved before fills were kept: mid-range
    gap.write_text("a,b,c\n,4,y\n")
    assert read_csv(gap, schema=legacy, missing="impute").x.numpy()[0, 0] == pytest.approx(1 + 9 / 2)


def test_schema_fit_and_transform_are_separate_steps(tmp_path):
    from aekit.data.tabular import read_table

    train = _animals(tmp_path / "train.csv", gap=True)
    schema = TableSchema.fit(read_table(train), missing="impute")
    assert schema.columns[1].fill is not None
    a = schema.transform(read_table(train), missing="impute")
    b = read_csv(train, missing="impute")
    assert a.schema == b.schema and torch.equal(a.x, b.x) and a.ids == b.ids
    new = schema.transform(read_table(_animals(tmp_path / "new.csv", n=4, seed=1)))
    assert new.schema is schema and len(new) == 4  # transform learns nothing
    data = read_path(train, missing="impute")  # read_path hands missing (and schema) to the CSV reader
    assert torch.equal(data.x, b.x)
    assert torch.equal(read_path(train, missing="impute", schema=schema).x, a.x)
