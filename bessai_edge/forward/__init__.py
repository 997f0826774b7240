"""Spool to MQTT forwarder, the ``bessai forward`` service.

``settings`` validates the MQTT settings, ``forwarder.Forwarder`` runs the loop, which
uses ``session`` (the broker connection), ``window`` (records in flight), ``cursor``
(the read position in the spool), ``checkpoint`` (the saved position), ``messages``
(topics and payloads) and ``outage`` (outage log lines). docs/forwarder.md describes
the guarantees and the settings.
"""
