"""The process runtime: containers as host process trees (see runtime.py)."""

from .namespaces import Capabilities
from .runtime import ProcessRuntime

__all__ = ["Capabilities", "ProcessRuntime"]
