"""Runs on this machine: the process-group runner, the supervisor, its identity, the handle."""
