"""The floor of jaxmob: what every environment and every learner builds on.

`env` (the Environment protocol and its `Agents` record), `random` (the random numbers a
city step spends), `task` (the plug-in an environment offers the generic tools),
`algorithm` (the record a learner offers them), `registry` (both, by name), `rollout`,
`sharding`, `geometry`, `errors` and `paths`. Nothing here imports jaxmob above it.
"""
