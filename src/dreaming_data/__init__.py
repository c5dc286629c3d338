"""Dreaming Data: class-conditional DDPMs that dream labelled training images."""

__version__ = "0.1.0"
