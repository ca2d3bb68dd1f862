"""Running a turn: the agent streamed to the platform, files and images read for it, tool
calls paused for approval and resumed from the stored `RunState`, and the sink that shows it.

The core decides whether and when a turn runs; this package owns how it goes.
"""
