"""Code that runs inside the sandbox: the launcher, its init process, the worker and the harness.

Standard library only, and no imports from outside this package: the launcher runs it as the
top-level package ``inside`` (``python -I -S`` with only this package's parent directory put on
``sys.path``), so that the sandbox never imports the project, torch or anything installed.
The host side imports the same modules as ``bgpo_lightning.sandbox.inside``.
"""
