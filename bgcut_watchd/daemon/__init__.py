"""The running daemon: its lifecycle (``service``), the live status it reports (``status``),
systemd notifications (``systemd``) and logging (``logsetup``)."""
