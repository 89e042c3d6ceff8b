"""The ``ray`` backend: runs as Ray jobs, through the Ray Jobs API (extra ``mlproj[ray]``)."""
