"""The mlp workload in TensorFlow (Keras 3); tribench builds it under the case's dtype policy."""

import keras
import tensorflow as tf

from tribench.plugins import BuildRequest, Parts
from tribench_mlp import layer_shapes


def loss(logits, labels):
    return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))


def build(request: BuildRequest) -> Parts:
    shapes = layer_shapes(request.size)
    layers = [keras.layers.Dense(outputs, activation="relu") for _, outputs in shapes[:-1]]
    model = keras.Sequential([keras.Input((shapes[0][0],)), *layers, keras.layers.Dense(shapes[-1][1])])
    config = request.config
    features = tf.random.stateless_normal((request.batch_size, config["features"]), seed=[request.seed, 0])
    labels = tf.random.stateless_uniform((request.batch_size,), seed=[request.seed, 1], minval=0,
                                         maxval=config["classes"], dtype=tf.int32)
    return Parts(model=model, inputs=features, targets=labels, loss=loss)
