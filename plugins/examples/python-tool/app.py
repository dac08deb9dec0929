"""An Agent Host tool written in Python: `text_stats` counts the lines,
words and characters of a text and lists its most common words.

Build: componentize-py -d ../../../wit/v0.2.0 -w tool-plugin componentize app -o text-stats.wasm
(scripts/build-plugins.sh does this). The `wit_world` bindings are generated
at build time from the WIT, so they are not kept in the repository.
"""

import heapq  # noqa: F401  (Counter.most_common imports it lazily; componentize-py bundles only static imports)
import json
from collections import Counter

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.tool import ToolError_InvalidInput, ToolOutput
from wit_world.imports.types import ContentPart_Text, ToolSpec, ToolUse

SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "description": "The text to measure"},
        "top": {"type": "integer", "minimum": 0, "maximum": 50, "description": "How many common words to list"},
    },
    "required": ["text"],
    "additionalProperties": False,
}


class Tool(exports.Tool):
    def describe(self) -> list[ToolSpec]:
        return [
            ToolSpec(
                name="text_stats",
                description="Count the lines, words and characters of a text and list its most common words.",
                input_schema=json.dumps(SCHEMA),
            )
        ]

    def invoke(self, call: ToolUse) -> ToolOutput:
        if call.name != "text_stats":
            raise Err(ToolError_InvalidInput(f"this component has no tool `{call.name}`"))
        try:
            args = json.loads(call.input)
        except json.JSONDecodeError as e:
            raise Err(ToolError_InvalidInput(f"input is not JSON: {e}"))
        text = args.get("text")
        if not isinstance(text, str):
            raise Err(ToolError_InvalidInput("`text` must be a string"))
        top = args.get("top", 3)
        if not isinstance(top, int) or not 0 <= top <= 50:
            raise Err(ToolError_InvalidInput("`top` must be an integer from 0 to 50"))
        words = [w.strip(".,;:!?\"'()").lower() for w in text.split()]
        words = [w for w in words if w]
        result = {
            "lines": len(text.splitlines()),
            "words": len(words),
            "characters": len(text),
            "top_words": [[w, n] for w, n in Counter(words).most_common(top)],
        }
        return ToolOutput(content=[ContentPart_Text(json.dumps(result))])
