"""What remote backends share: the run handle, the detached watcher, re-attaching from tags."""
