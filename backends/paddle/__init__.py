"""The PaddlePaddle backend: ``models`` and ``decoder`` (native paddle.nn layers); this file imports nothing."""
