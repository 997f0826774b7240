"""Simulated Modbus TCP devices: a battery model behind a profile's register map, or a
recorded register image, served with injectable faults (``bessai simulate``)."""
