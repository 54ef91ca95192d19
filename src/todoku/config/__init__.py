"""Configuration: one TOML file read into frozen dataclasses; every error names its key or file."""

from todoku.config.load import Config, ConfigError, ListenAddress, load_config

__all__ = ["Config", "ConfigError", "ListenAddress", "load_config"]
