"""What a run keeps on disk, in one room so durability is audited in one place.

``state``: live state files (atomic writes, adapters, the state-dir lock); ``history``: closed
signals of live runs; ``candles``: the SQLite candle store.
"""
