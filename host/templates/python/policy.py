"""{{name}}: a policy for Agent Host, in Python.

`step` sees the session so far and decides what happens next: run tools
(act), say something and wait (reply), or end (finish). This one hands the
conversation and the session's tools to the model and does what it
answers. Build: `agenthost plugin build`; try it:
`agenthost plugin step {{name}}.wasm --message "hello" --replay answers.json`.
"""

import agenthost_sdk as sdk
from wit_world import exports
from wit_world.exports.policy import Info

SYSTEM = (
    "You operate a Linux desktop for the person through the tools you are given. "
    "Work step by step and say briefly what you are doing."
)


class Policy(exports.Policy):
    def describe(self):
        return Info(name="{{name}}", description="Asks the model what to do next and does it")

    def step(self, ctx):
        response = sdk.complete(ctx.history, ctx.tools, system=SYSTEM)
        return sdk.decide(response)
