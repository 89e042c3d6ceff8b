"""Docker through its CLI: daemon checks, image builds and pushes.

Shared by the docker environment and the Kubernetes backend."""
