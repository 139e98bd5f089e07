"""Background work: the kinds of job (``kinds``), the worker that claims and runs them in
subprocesses (``worker``, ``child``) and the periodic scheduler inside it (``scheduler``).

The jobs table and its SQL live in ``visionloop.server.store.jobs``.
"""
