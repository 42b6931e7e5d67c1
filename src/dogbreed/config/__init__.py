"""Typed configuration: schema, layered loading, and hyperparameters <-> job flags."""

from dogbreed.config.loader import load_config, require_path
from dogbreed.config.schema import Config

__all__ = ["Config", "load_config", "require_path"]
