"""One job, no threads of its own: ``steps`` carries it from its journaled state to its end.

State: ``journal`` (the durable record), ``workarea`` (claiming and crash recovery), ``timeline``
and ``logfields`` (what its log lines carry). Before paying: ``validate`` (the local check),
``decoding``, ``pixelbudget`` (the decode pixel budget), ``normalize``, ``colour`` and ``icc``
(colour profiles), ``pages``, ``downscale``, ``settle`` and ``unsettled`` (the input must not
change), ``cost`` (the spend model), ``duplicates`` (reuse instead of paying). After paying:
``lookout`` (an unanswered call), ``fetch``, ``verify`` and ``pngdata`` (outputs checked before
publishing), ``render`` (local rendering), ``metadata`` and ``stamp`` (the studio's metadata),
``naming``, ``publish``, ``dispose``, ``quarantine`` and ``quarantining``.
"""
