"""The running daemon: its lifecycle (``service``, ``wakeup``, ``lock``), the live status it
reports (``status``), systemd notifications (``systemd``), logging (``logsetup``), folders on
standby (``standby``), housekeeping (``housekeeping``), and what the operator sees and hears:
``monitor`` (the engine's observer), ``history`` (the last jobs
and their pictures, from the ledger), ``http`` (the listener), ``metrics``, ``events``,
``notify``, ``cache`` and the status page (``web/``)."""
