"""`make soak`: the relay left running with steady traffic and a worker restarted every minute.

- `__main__`: the command (``python -m bench.soak --minutes N``), its report and exit status.
- `run`: the processes, the traffic, the restarts and the measures; `tasks`: the handler it runs.
- `checks`: the pure part: key families and lifetimes, the sizing formula, the verdicts.
"""
