"""Shared, thread-safe state that knows nothing of jobs: the retry policy (``retry``), the
request rate limiter (``ratelimit``), pauses with a single probe (``pause``), the guard every API
call passes (``guard``), the API slots (``slots``) and the worker pool (``scheduler``,
``tickets``)."""
