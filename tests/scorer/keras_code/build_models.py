"""Trains the Keras corpus's models, as a trainee would, in the TensorFlow runtime (run as a script).

    <tensorflow runtime>/bin/python build_models.py DATA_DIR OUT_DIR

One process, one TensorFlow import, a few seconds of training on the synthetic training set
(which stands in for the course's public set). It writes every form the corpus submits:

- ``sequential.h5``: a Sequential CNN saved with ``model.save("....h5")`` (legacy HDF5);
- ``native.keras``: the same model in Keras 3's own format;
- ``cnn.weights.h5``: its weights only (``save_weights``); the trainee's module builds the layers;
- ``savedmodel/``: a TensorFlow SavedModel folder (``model.export``);
- ``keras2.h5``: the same weights in the HDF5 layout the Keras 2 of the course's era wrote
  (keras_version 2.2.4, ``model_config`` with Keras-2 layer configs, weights named ``kernel:0``);
- ``custom_layer.keras``: a model with a custom layer class the submission does not define;
- ``batchnorm.keras``: a dense model with batch normalisation, which is about as right as guessing
  when the ``/ 255`` is left out of ``predict`` (see :func:`batchnorm_net`).

The model takes channels-last images scaled to 0–1, as the course's Keras notebooks train it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import h5py
import keras
import numpy as np

TRAIN_IMAGES = 6000
EPOCHS = 3


def cnn() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(16, 3, activation="relu", name="conv2d_1"),
            keras.layers.MaxPooling2D(2, name="max_pooling2d_1"),
            keras.layers.Flatten(name="flatten_1"),
            keras.layers.Dense(15, activation="softmax", name="dense_1"),
        ]
    )


def batchnorm_net() -> keras.Model:
    """Dense → BatchNormalization → ReLU → Dense, as the NumPy corpus's batch-norm model
    (tests/scorer/real_code/model.py): its first layer a fixed random projection whose weights have a
    slight positive mean, as trained first layers on mostly-white images tend to have, and only the
    rest trained (quick, and the same every time). Fed ``x / 255`` it is right as trained; fed the
    raw 0-255 images, the projection's shared part swamps the batch norm's running statistics and it
    answers (nearly) one class for everything. Models without normalisation hardly notice: ReLU and
    max-pooling layers only scale their outputs (the CNN here, or a dense ReLU, sigmoid or tanh model
    all stayed within a point of their accuracy without the ``/ 255``)."""
    projection = keras.initializers.RandomNormal(mean=0.015, stddev=1 / 28, seed=0)
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(256, kernel_initializer=projection, trainable=False),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu"),
            keras.layers.Dense(15, activation="softmax"),
        ]
    )


@keras.saving.register_keras_serializable(package="trainee")
class Doubled(keras.layers.Layer):
    """A custom layer, registered here but not in the submission that loads the model."""

    def call(self, inputs):  # type: ignore[no-untyped-def]
        return inputs * 2.0


def keras2_h5(model: keras.Model, path: Path) -> None:
    """``model``'s weights in the layout ``model.save`` of Keras 2.2.4 wrote: what a trainee of the
    course's era kept and submits with ``from keras.models import load_model``."""
    conv, dense = model.get_layer("conv2d_1"), model.get_layer("dense_1")
    initializer = {
        "class_name": "VarianceScaling",
        "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": None},
    }
    common = {"kernel_initializer": initializer, "bias_initializer": {"class_name": "Zeros", "config": {}},
              "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
              "kernel_constraint": None, "bias_constraint": None, "use_bias": True}  # fmt: skip
    layers = [
        {"class_name": "Conv2D", "config": {"name": "conv2d_1", "trainable": True,
         "batch_input_shape": [None, 28, 28, 1],
         "dtype": "float32", "filters": 16, "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid",
         "data_format": "channels_last", "dilation_rate": [1, 1], "activation": "relu", **common}},
        {"class_name": "MaxPooling2D", "config": {"name": "max_pooling2d_1", "trainable": True, "pool_size": [2, 2],
         "padding": "valid", "strides": [2, 2], "data_format": "channels_last"}},
        {"class_name": "Flatten", "config": {"name": "flatten_1", "trainable": True, "data_format": "channels_last"}},
        {"class_name": "Dense", "config": {"name": "dense_1", "trainable": True, "units": 15, "activation": "softmax",
         **common}},
    ]  # fmt: skip
    config = {"class_name": "Sequential", "config": {"name": "sequential_1", "layers": layers}}
    training = {"optimizer_config": {"class_name": "Adam", "config": {"lr": 0.001, "beta_1": 0.9, "beta_2": 0.999,
                "decay": 0.0, "amsgrad": False}}, "loss": "categorical_crossentropy", "metrics": ["accuracy"],
                "sample_weight_mode": None, "loss_weights": None}  # fmt: skip
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.2.4"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["training_config"] = json.dumps(training).encode()
        weights = f.create_group("model_weights")
        weights.attrs["keras_version"] = b"2.2.4"
        weights.attrs["backend"] = b"tensorflow"
        weights.attrs["layer_names"] = [b"conv2d_1", b"max_pooling2d_1", b"flatten_1", b"dense_1"]
        for name, layer in (("conv2d_1", conv), ("max_pooling2d_1", None), ("flatten_1", None), ("dense_1", dense)):
            group = weights.create_group(name)
            names = [f"{name}/kernel:0", f"{name}/bias:0"] if layer is not None else []
            group.attrs["weight_names"] = [n.encode() for n in names]
            for weight_name, value in zip(names, layer.get_weights() if layer is not None else [], strict=True):
                group.create_dataset(weight_name, data=value)


def main(data_dir: Path, out: Path) -> None:
    keras.utils.set_random_seed(0)
    images = np.load(data_dir / "train_data.npy")[:TRAIN_IMAGES]
    labels = np.load(data_dir / "train_label.npy")[:TRAIN_IMAGES]
    x = images.transpose(0, 2, 3, 1).astype("float32") / 255
    model = cnn()
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, labels, epochs=EPOCHS, batch_size=64, verbose=0)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "sequential.h5")
    model.save(out / "native.keras")
    model.save_weights(out / "cnn.weights.h5")
    model.export(out / "savedmodel", verbose=False)
    keras2_h5(model, out / "keras2.h5")
    custom = keras.Sequential([keras.Input((28, 28, 1)), Doubled(), *cnn().layers])
    custom.save(out / "custom_layer.keras")
    batchnorm = batchnorm_net()
    batchnorm.compile(keras.optimizers.Adam(0.01), "categorical_crossentropy", metrics=["accuracy"])
    batchnorm.fit(x, labels, epochs=8, batch_size=64, verbose=0)
    batchnorm.save(out / "batchnorm.keras")
    trained = {
        "train_accuracy": float(model.evaluate(x[-1000:], labels[-1000:], verbose=0)[1]),
        "batchnorm_accuracy": float(batchnorm.evaluate(x[-1000:], labels[-1000:], verbose=0)[1]),
        "batchnorm_unscaled_accuracy": float(batchnorm.evaluate(x[-1000:] * 255, labels[-1000:], verbose=0)[1]),
    }
    (out / "trained.json").write_text(json.dumps(trained))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
