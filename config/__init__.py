"""Settings and the exception root shared by every intake package."""

from config.errors import ConfigError, IntakeError
from config.settings import Settings, load_settings

__all__ = ["ConfigError", "IntakeError", "Settings", "load_settings"]
