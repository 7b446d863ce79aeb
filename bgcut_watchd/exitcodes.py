"""Exit codes of every bgcut-watchd command (product.md, "Command line")."""

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3  # ``status``: no daemon is alive (as LSB init scripts say it)
EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h: systemd's RestartPreventExitStatus names it
EXIT_NOT_RUNNING = 3  # status, resume: no daemon runs with this state_dir
