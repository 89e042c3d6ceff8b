"""The ``mlproj`` command line: one module per command group."""
