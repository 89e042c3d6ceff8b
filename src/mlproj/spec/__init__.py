"""The MLproject file: the project model, parameter types and the rendered command."""

from mlproj.spec.project import DockerEnv, EntryPoint, Parameter, Project, load_project

__all__ = ["DockerEnv", "EntryPoint", "Parameter", "Project", "load_project"]
