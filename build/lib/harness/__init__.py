"""Backup verification harness for PostgreSQL + Barman.

The pytest-free core: a nightly script, bench/ or a REPL drives a drill with the same objects the
pytest plugin (harness.plugin) hands to scenarios::

    from harness import DrillConfig, RecoveryTarget, Scratch, make_stack

    with make_stack(DrillConfig(rows=1000)) as stack:
        books = stack.source.books(seed=1)
        books.insert(1000)
        expected = stack.source.fingerprint()
        backup = stack.barman.backup()
        Scratch(stack, "by-hand").recover(backup, RecoveryTarget("immediate")).assert_matches(expected)

The names above are loaded on first use, so ``import harness`` stays cheap (the compose stack's
writer container imports harness.drill.write_data with nothing else installed).
"""

__version__ = "0.2.0"

_PUBLIC = {
    "DrillConfig": "harness.config",
    "make_stack": "harness.stacks",
    "Stack": "harness.stacks",
    "RecoveryTarget": "harness.drill.targets",
    "Scratch": "harness.drill.scratch",
    "Restored": "harness.drill.scratch",
    "Fingerprint": "harness.drill.fingerprint",
    "HarnessError": "harness.errors",
    "VerificationFailed": "harness.errors",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
