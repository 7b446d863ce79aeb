"""One module per command of ``bgcut-watchd``, named after it, each with ``run(args) -> int``:
``run``, ``check_config``, ``process``, ``status``, ``requeue``, ``explain``, ``demo``,
``fake_api``. ``common`` and ``process_inputs`` are what they share and what ``process`` reads.
"""
