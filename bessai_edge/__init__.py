"""bessai-edge: a Modbus TCP edge gateway for battery energy storage sites."""

__version__ = "0.1.0"
