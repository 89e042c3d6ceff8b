"""The ``kubernetes`` backend: the project image run as a Kubernetes Job."""
