"""What each ``bso-deploy`` command does, one module per command (layer L4: they import the library at the
top). ``bso_deploy.cli`` imports the one that runs, by name, after parsing (so ``--help`` needs none)."""
