"""The TensorFlow backend: Keras 3 models on TensorFlow, trained by a custom tf.function step.

``adapter`` holds the Backend and Session, ``models`` the Keras model builders,
``devices`` the pure device / precision / compile decisions. This package file
imports nothing, so ``import backends.tensorflow`` does not load TensorFlow.
"""
