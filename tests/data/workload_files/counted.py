"""A workload defined in a file, with no analytic formulas: tribench counts its FLOPs with each framework's
own counter and takes its parameter count from the built model. Its top level imports no framework."""

from tribench.plugins import Parts, Workload

FEATURES, CLASSES = 16, 4


def torch_build(request):
    import torch
    import torch.nn.functional as F

    generator = torch.Generator(device=request.device).manual_seed(request.seed)
    features = torch.randn(request.batch_size, FEATURES, generator=generator, device=request.device)
    labels = torch.randint(CLASSES, (request.batch_size,), generator=generator, device=request.device)
    return Parts(torch.nn.Linear(FEATURES, CLASSES), features, labels, loss=F.cross_entropy)


def keras_build(request):
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(CLASSES)])
    features = tf.random.stateless_normal((request.batch_size, FEATURES), seed=[request.seed, 0])
    labels = tf.random.stateless_uniform((request.batch_size,), seed=[request.seed, 1], minval=0, maxval=CLASSES,
                                         dtype=tf.int32)

    def loss(logits, targets):
        return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True))

    return Parts(model, features, labels, loss=loss)


def jax_build(request):
    import jax
    import jax.numpy as jnp

    key = jax.random.key(request.seed)
    params = {"w": jax.random.normal(key, (FEATURES, CLASSES)) * 0.1, "b": jnp.zeros(CLASSES)}
    features = jax.random.normal(jax.random.fold_in(key, 1), (request.batch_size, FEATURES))
    labels = jax.random.randint(jax.random.fold_in(key, 2), (request.batch_size,), 0, CLASSES)

    def apply(params, inputs):
        return inputs @ params["w"] + params["b"]

    def loss(logits, targets):
        return -jnp.take_along_axis(jax.nn.log_softmax(logits), targets[:, None], axis=1).mean()

    return Parts(apply, features, labels, loss=loss, params=params)


def paddle_build(request):
    import paddle
    import paddle.nn.functional as F

    paddle.seed(request.seed)
    features = paddle.randn([request.batch_size, FEATURES])
    labels = paddle.randint(0, CLASSES, [request.batch_size])
    return Parts(paddle.nn.Linear(FEATURES, CLASSES), features, labels, loss=F.cross_entropy)


counted = Workload("counted", "a linear classifier defined in a file", {"tiny": {}},
                   {"torch": torch_build, "tensorflow": keras_build, "jax": jax_build, "paddle": paddle_build})
