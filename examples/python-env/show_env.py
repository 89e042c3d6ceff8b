"""Shows that the command runs inside the project's own environment."""

import os
import sys

import six

print(f"argument: {sys.argv[1]}")
print(f"python {sys.version.split()[0]} from {sys.prefix}")
print(f"six {six.__version__}; VIRTUAL_ENV={os.environ.get('VIRTUAL_ENV')}")
