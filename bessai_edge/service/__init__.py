"""systemd integration of ``bessai run``: sd_notify, journald logging, health and metrics HTTP."""
