"""Architectures (a registry) and teachers.

Every classifier here exposes the same three-part interface the methods rely on:
``forward_features(x)`` -> the pre-global-pooling feature map (MiR's "pre-GAP" feature),
``forward_head(fmap)`` -> logits (global average pooling + the linear head), and ``head_names()`` ->
the parameter-name prefixes of the head (MiR keeps them bit-identical).
"""
from .registry import ARCHS, ArchSpec, build_model  # noqa: F401
from . import cifar_resnet, cifar_vgg, imagenet_resnet  # noqa: F401  (register built-ins)
