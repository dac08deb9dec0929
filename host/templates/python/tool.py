"""{{name}}: a tool for Agent Host, in Python.

`describe` lists the tools this component offers; `invoke` runs one call.
Host capabilities are in `wit_world.imports` (computer, shell, files, llm,
log); list the ones you use under `capabilities` in plugin.toml (log needs
no grant). Build: `agenthost plugin build`. The `wit_world` bindings are
generated from wit/ at build time.
"""

import agenthost_sdk as sdk
from wit_world import exports
from wit_world.imports import log

SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "description": "The text to send back"},
        "times": {"type": "integer", "minimum": 1, "maximum": 10, "description": "How many times to repeat it"},
    },
    "required": ["text"],
    "additionalProperties": False,
}


class Tool(exports.Tool):
    def describe(self):
        return [sdk.spec("{{tool}}", "Sends `text` back, repeated `times` times.", SCHEMA)]

    def invoke(self, call):
        if call.name != "{{tool}}":
            raise sdk.invalid_input(f"no tool `{call.name}` here")
        # The host checked the input against SCHEMA before this runs.
        args = sdk.parse_input(call)
        log.log(log.Level.INFO, f"echoing {len(args['text'])} characters")
        return sdk.output(" ".join([args["text"]] * args.get("times", 1)))
