"""Python virtual environments: uv and virtualenv managers, interpreters, spec readers."""
