// {{name}}: a tool for Agent Host, in JavaScript.
//
// `describe` lists the tools this component offers; `invoke` runs one call.
// Host capabilities are imported from "agenthost:plugin/<name>@0.2.0"
// (computer, shell, files, llm, log); list the ones you use under
// `capabilities` in plugin.toml (log needs no grant).
// Build: `agenthost plugin build`.

import { log } from "agenthost:plugin/log@0.2.0";
import { invalidInput, output, parseInput, spec } from "./sdk.js";

const SCHEMA = {
  type: "object",
  properties: {
    text: { type: "string", description: "The text to send back" },
    times: { type: "integer", minimum: 1, maximum: 10, description: "How many times to repeat it" },
  },
  required: ["text"],
  additionalProperties: false,
};

export const tool = {
  describe() {
    return [spec("{{tool}}", "Sends `text` back, repeated `times` times.", SCHEMA)];
  },

  invoke(call) {
    if (call.name !== "{{tool}}") {
      throw invalidInput(`no tool \`${call.name}\` here`);
    }
    // The host checked the input against SCHEMA before this runs.
    const args = parseInput(call);
    log("info", `echoing ${args.text.length} characters`);
    return output(Array(args.times ?? 1).fill(args.text).join(" "));
  },
};
