"""One module per command of ``bgcut-watchd``, named after it, each with ``run(args) -> int``:
``run``, ``check_config``, ``process``, ``status``, ``resume``, ``requeue``, ``explain``,
``fake_api`` (the emulator's own ``cli``, which stands alone), ``demo`` and ``completion``.
Helpers a command reads: ``common`` (what several share: the configuration, a path's folder),
``process_inputs`` and ``process_report`` (for ``process``), ``explain_cost`` (for ``explain``).
"""
