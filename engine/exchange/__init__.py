"""Exchange adapters and the engine's side of them: answer checks, chunking,
retries (``client``), VWAP (``vwap``); shipped adapters: ``bundled``."""
