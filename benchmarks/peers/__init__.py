"""btk side by side with other backtesters on one workload (see ``workload.py``)."""
