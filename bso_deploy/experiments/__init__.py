"""Experiments built on the library, not part of it: the on-chip adaptation scenario of ``bso-deploy learn``
and its report. The benchmarks live next door in ``bso_deploy.bench``."""
