"""`make bench`: the relay measured side by side with what a user would otherwise write.

- `__main__`: the harness (``python -m bench``), which writes `bench/RESULTS.md`.
- `edge`: ceiling, baseline and relay edge under wrk; `pipeline`: edge plus arq workers end to end.
- `load`: signed bodies and the wrk runner (`wrk/post.lua`); `processes`: the servers it starts and stops.
- `report`: targets and the Markdown; `ceiling_app`, `baseline_app`, `noop_tasks`: what is measured.
"""
