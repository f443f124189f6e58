"""The engine as a service: a host of runs that consoles drive with commands and watch through
batches of events (``host``), on a thread of its own inside the console (``thread``)."""
