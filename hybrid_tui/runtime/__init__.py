"""Runtime: the coordinator loop, launch, recovery, headless mode and the run commands."""
