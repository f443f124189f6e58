"""The ``btk`` commands that run something (``live``, ``walker``, the server's): one module each;
``console/cli.py`` parses and dispatches, the screens are the TUI's."""
