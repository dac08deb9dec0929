"""An Agent Host policy written in Python: `step-limit` asks the model what
to do, like the template, but stops a run after `max_steps` steps (from the
operator's config, default 10), counting in the state blob the host keeps
between steps.

Build: componentize-py -d ../../../wit/v0.2.0 -w policy-plugin componentize app
-p . -p ../../sdk/python -o step-limit.wasm (scripts/build-plugins.sh does
this). `agenthost_sdk` is the helper module `agenthost plugin new --lang
python` puts in a project.
"""

import json

import agenthost_sdk as sdk
from wit_world import exports
from wit_world.exports.policy import Info

SYSTEM = "You operate a Linux desktop for the person through the tools you are given."


class Policy(exports.Policy):
    def describe(self):
        return Info(name="step-limit", description="Asks the model, and stops a run after max_steps steps")

    def step(self, ctx):
        config = json.loads(ctx.config or "{}")
        max_steps = config.get("max_steps", 10)
        if not isinstance(max_steps, int) or max_steps < 1:
            raise sdk.policy_failed("config `max_steps` must be a positive integer")
        # The count restarts whenever the person speaks: it limits one run.
        taken = 0
        if ctx.state is not None and sdk.latest_tool_results(ctx.history):
            taken = json.loads(bytes(ctx.state))["taken"]
        if taken >= max_steps:
            return sdk.finish(f"I stopped after {taken} steps (the limit is {max_steps}).")
        state = json.dumps({"taken": taken + 1}).encode()
        return sdk.decide(sdk.complete(ctx.history, ctx.tools, system=SYSTEM), state)
