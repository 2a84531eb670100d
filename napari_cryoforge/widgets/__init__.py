"""The plugin's docks, one module each, on :class:`._dock.JobDock`."""
