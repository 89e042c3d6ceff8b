"""The ``databricks`` backend: a one-time job run on a new cluster."""
