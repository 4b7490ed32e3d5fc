"""Backbones, weights, transfer classifier, encoder, Grad-CAM, saving and the image study."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from lightgbm import LGBMClassifier
from safetensors.torch import save_file
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medpredict.artifact import load_model, save_model
from medpredict.data.errors import DataError
from medpredict.imaging.backbones import (
    WeightsError,
    build_backbone,
    imagenet_weights_path,
    load_weights,
)
from medpredict.imaging.cohort import load_medmnist
from medpredict.imaging.encoder import PretrainedImageEncoder
from medpredict.imaging.ensemble import AveragedImageModels, network_weights
from medpredict.imaging.gradcam import grad_cam, gradcam_section
from medpredict.imaging.models import image_cnn
from medpredict.imaging.study_spec import write_image_study
from medpredict.imaging.transfer import ImageTransferClassifier
from medpredict.models import make_model
from medpredict.settings import require_data
from medpredict.spec import load_spec
from medpredict.study import run_study

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def breast():
    return load_medmnist(require_data("images/breastmnist_28.npz"))


@pytest.fixture(scope="module")
def small(breast):
    """32 training images (both classes) and 16 validation images of BreastMNIST."""
    train, val = breast["train"], breast["val"]
    rows = np.r_[np.flatnonzero(train.labels == 0)[:12], np.flatnonzero(train.labels == 1)[:20]]
    return train.subset(rows), val.subset(range(16))


def test_efficientnet_loads_real_imagenet_weights():
    checkpoint = torch.load(imagenet_weights_path(), weights_only=True)
    net = build_backbone("efficientnet_lite0", image_size=64)
    state = net.state_dict()
    assert set(checkpoint) - set(state) == {"_fc.weight", "_fc.bias"}
    for key in ("_conv_stem.weight", "_blocks.7._depthwise_conv.weight", "_bn1.running_var"):
        assert torch.equal(state[key], checkpoint[key])
    random = build_backbone("efficientnet_lite0", image_size=64, pretrained=False)
    assert not torch.equal(
        random.state_dict()["_conv_stem.weight"], checkpoint["_conv_stem.weight"]
    )
    assert sum(p.numel() for p in net.parameters()) == 3_371_008


def test_user_weights_safetensors_and_state_dict(tmp_path):
    net = build_backbone("small_cnn", pretrained=False)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, tmp_path / "w.safetensors")
    torch.save({"state_dict": state}, tmp_path / "w.pt")
    for name in ("w.safetensors", "w.pt"):
        loaded = build_backbone("small_cnn", weights=tmp_path / name)
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())


def test_mismatched_or_unsafe_weights_are_refused(tmp_path):
    torch.save({"_conv_stem.weight": torch.zeros(3)}, tmp_path / "bad.pt")
    with pytest.raises(WeightsError, match=r"bad\.pt does not match.*missing: .*shape: _conv_stem"):
        build_backbone("efficientnet_lite0", image_size=32, weights=tmp_path / "bad.pt")
    torch.save({"model": object()}, tmp_path / "pickled.pt")
    with pytest.raises(WeightsError, match=r"cannot read weights file .*pickled\.pt"):
        load_weights(build_backbone("small_cnn"), tmp_path / "pickled.pt")
    with pytest.raises(WeightsError, match="does not exist"):
        build_backbone("small_cnn", weights=tmp_path / "absent.safetensors")


def test_fine_tune_step_changes_trained_stages_only_and_is_seeded(small):
    train, _ = small
    params = dict(
        strategy="last_blocks",
        trainable_stages=1,
        image_size=32,
        max_epochs=1,
        validation_fraction=0,
        batch_size=16,
        random_state=7,
    )
    start = build_backbone("efficientnet_lite0", image_size=32).state_dict()
    first = ImageTransferClassifier(**params).fit(train.images, train.labels)
    after = first.module_.backbone.state_dict()
    assert not torch.equal(after["_conv_head.weight"], start["_conv_head.weight"])
    assert torch.equal(
        after["_blocks.15._project_conv.weight"], start["_blocks.15._project_conv.weight"]
    )
    assert torch.equal(after["_bn1.running_mean"], start["_bn1.running_mean"])  # frozen BN stats
    second = ImageTransferClassifier(**params).fit(train.images, train.labels)
    np.testing.assert_array_equal(
        first.predict_proba(train.images[:8]), second.predict_proba(train.images[:8])
    )
    other = ImageTransferClassifier(**{**params, "random_state": 8}).fit(train.images, train.labels)
    assert not np.array_equal(
        other.predict_proba(train.images[:8]), first.predict_proba(train.images[:8])
    )


def test_full_fine_tune_with_given_validation_set_and_clone(small):
    train, val = small
    model = ImageTransferClassifier(
        strategy="full", image_size=32, max_epochs=2, patience=1, batch_size=16, layer_decay=0.5
    )
    assert clone(model).get_params() == model.get_params()
    model.fit(train.images, train.labels, X_val=val.images, y_val=val.labels)
    assert model.fit_log_.epochs_run == 2 and len(model.fit_log_.validation_auroc) == 2
    assert model.predict(val.images).shape == (16,)
    with pytest.raises(DataError, match=r"y_val has labels \[5\]"):
        clone(model).fit(train.images, train.labels, X_val=val.images[:2], y_val=[0, 5])
    with pytest.raises(DataError, match="image array"):
        model.predict_proba(np.zeros((3, 28)))


def test_inductive_transfer_from_named_source(tmp_path, breast, small):
    """The source is a MedMNIST-format file written from real BreastMNIST images."""
    train, val = small
    source = tmp_path / "source.npz"
    arrays = {}
    for split, cohort in (("train", breast["test"].subset(range(40))), ("val", val), ("test", val)):
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = cohort.images, cohort.labels
    np.savez(source, **arrays)
    model = ImageTransferClassifier(
        "small_cnn", source=str(source), source_epochs=1, max_epochs=1, batch_size=16
    ).fit(train.images, train.labels)
    assert model.source_log_ is not None and model.source_log_.epochs_run == 1
    assert model.predict_proba(val.images).shape == (16, 2)


def test_saved_transfer_model_round_trip(tmp_path, small):
    train, val = small
    model = ImageTransferClassifier(
        strategy="last_blocks", trainable_stages=2, image_size=32, max_epochs=1, batch_size=16
    ).fit(train.images, train.labels)
    expected = model.predict_proba(val.images)
    path = save_model(
        tmp_path / "m", model, {"name": "t"}, {"weights.safetensors": model.export_weights()}
    )
    manifest = json.loads((path / "MANIFEST.json").read_text())["files"]
    assert set(manifest) == {"model.skops", "metadata.json", "weights.safetensors"}
    loaded = load_model(path).estimator
    np.testing.assert_allclose(loaded.predict_proba(val.images), expected, rtol=1e-6)
    encoder = PretrainedImageEncoder(image_size=32, weights=str(path / "weights.safetensors"))
    features = encoder.fit(val.images).transform(val.images)
    with torch.no_grad():
        reference = model.module_.backbone.pooled(
            model.module_.to_input(torch.from_numpy(val.images[:, None] / 255.0).float())
        )
    np.testing.assert_allclose(features, reference.numpy(), rtol=1e-4, atol=1e-5)


def _probe():
    """A small hybrid probe: EfficientNet-Lite0 features of the last two stages + LR."""
    return make_pipeline(
        PretrainedImageEncoder(image_size=32, stages=(-2, -1)),
        StandardScaler(),
        LogisticRegression(C=0.01, max_iter=2000),
    )


def test_hybrid_probe_pipeline_saves_and_explains(tmp_path, small):
    train, val = small
    probe = _probe().fit(train.images, train.labels)
    assert probe[0].n_features_out_ == 320 + 1280
    expected = probe.predict_proba(val.images)
    loaded = load_model(save_model(tmp_path / "probe", probe, {"name": "p"})).estimator
    np.testing.assert_allclose(loaded.predict_proba(val.images), expected, rtol=1e-6)
    cams = grad_cam(probe, val.images[:4])  # the 4 x 4 map of stage 3 at 32 px
    assert cams.shape == (4, 28, 28) and cams.min() >= 0 and cams.max() <= 1
    assert cams.reshape(4, -1).std(axis=1).max() > 0
    trees = make_pipeline(PretrainedImageEncoder(image_size=32), LGBMClassifier(n_estimators=5))
    trees.fit(train.images, train.labels)
    section = gradcam_section(trees, val.images, val.labels)
    assert "not available" in section.body


def test_averaged_probe_and_network_saves_and_explains(tmp_path, small):
    train, val = small
    probe = _probe()
    network = ImageTransferClassifier(
        "small_cnn", max_epochs=2, batch_size=16, random_state=3
    )
    model = AveragedImageModels([("probe", probe), ("network", network)])
    model.fit(train.images, train.labels, X_val=val.images, y_val=val.labels)
    alone = clone(network).fit(train.images, train.labels, X_val=val.images, y_val=val.labels)
    assert model.members_[1].fit_log_ == alone.fit_log_  # the network got the validation split
    members = [m.predict_proba(val.images) for m in model.members_]
    np.testing.assert_allclose(model.predict_proba(val.images), np.mean(members, axis=0))
    path = save_model(tmp_path / "avg", model, {"name": "a"}, network_weights(model))
    loaded = load_model(path).estimator
    np.testing.assert_allclose(loaded.predict_proba(val.images), model.predict_proba(val.images),
                               rtol=1e-6)
    # the network member's backbone is stored as safetensors and loads back on its own
    assert (path / "weights.safetensors").is_file()
    backbone = build_backbone("small_cnn", weights=path / "weights.safetensors")
    trained = model.members_[1].module_.backbone.state_dict()
    assert all(torch.equal(backbone.state_dict()[k], v) for k, v in trained.items())
    cams = grad_cam(model, val.images[:4])
    assert cams.shape == (4, 28, 28) and cams.min() >= 0 and cams.max() <= 1


def test_gradcam_section_shows_correct_and_wrong(small):
    train, val = small
    model = ImageTransferClassifier("small_cnn", max_epochs=1, batch_size=16).fit(
        train.images, train.labels
    )
    section = gradcam_section(model, val.images, val.labels, {0: "malignant", 1: "benign"}, 2)
    assert section.body.count("<img") >= 1 and "Correct predictions" in section.body


def test_registered_image_model_reads_reference_column(breast):
    path = require_data("images/breastmnist_28.npz")
    frame = pd.DataFrame({"image": [f"{path}#train_images/{i}" for i in range(40)]})
    model = make_model("image_cnn", seed=1, max_epochs=1, batch_size=16)
    assert model.get_params()["model"].get_params() == image_cnn(1, None, max_epochs=1,
        batch_size=16).get_params()["model"].get_params()
    model.fit(frame, breast["train"].labels[:40])
    assert model.predict_proba(frame.iloc[:5]).shape == (5, 2)


def test_image_study_end_to_end(tmp_path, breast, small):
    """An image study is a study spec: fixed splits, selection on validation, test hold-out."""
    train, val = small
    test = breast["test"].subset(range(40))
    models = [
        {"name": "probe", "params": {"cnn__image_size": 32}},
        {"name": "cnn", "params": {"max_epochs": 2, "batch_size": 16}},
    ]
    path = write_image_study(
        tmp_path, {"train": train, "val": val, "test": test}, models, bootstrap=50
    )
    result = run_study(load_spec(path), quiet=True)
    auroc = {name: c.metrics["auroc"].value for name, c in result.candidates.items()}
    assert result.best_name == max(auroc, key=auroc.get)
    assert all(len(c.oof_proba) == len(val) for c in result.candidates.values())
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["candidates"]) == {"probe", "cnn"}
    assert metrics["holdouts"]["test"]["rows"] == len(test)
    auc = metrics["holdouts"]["test"]["metrics"]["auroc"]
    assert auc["low"] <= auc["value"] <= auc["high"]
    page = (tmp_path / "report.html").read_text()
    assert f"Grad-CAM of {result.best_name} (test images)" in page and "malignant" in page
    assert "Correct predictions" in page
    loaded = load_model(tmp_path / "model")
    assert loaded.metadata.positive_class == "0" and loaded.metadata.model == result.best_name
    assert loaded.metadata.training_rows == len(train) + len(val)
    assert {"conformal.skops", "model_card.json", "model_card.md"} <= set(
        json.loads((tmp_path / "model" / "MANIFEST.json").read_text())["files"]
    )
    (holdout,) = result.holdouts
    np.testing.assert_allclose(
        loaded.estimator.predict_proba(test.frame()[["image"]]), holdout.proba, rtol=1e-6
    )
