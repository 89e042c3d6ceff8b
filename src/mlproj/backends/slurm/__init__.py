"""The ``slurm`` backend: runs as Slurm batch jobs, driven through Slurm's own CLI."""
