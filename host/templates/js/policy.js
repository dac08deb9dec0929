// {{name}}: a policy for Agent Host, in JavaScript.
//
// `step` sees the session so far and decides what happens next: run tools
// (act), say something and wait (reply), or end (finish). This one hands
// the conversation and the session's tools to the model and does what it
// answers. Build: `agenthost plugin build`; try it:
// `agenthost plugin step {{name}}.wasm --message "hello" --replay answers.json`.

import { complete } from "agenthost:plugin/llm@0.2.0";
import { decide, hostError } from "./sdk.js";

const SYSTEM =
  "You operate a Linux desktop for the person through the tools you are given. " +
  "Work step by step and say briefly what you are doing.";

export const policy = {
  describe() {
    return { name: "{{name}}", description: "Asks the model what to do next and does it" };
  },

  step(ctx) {
    let response;
    try {
      response = complete({
        system: SYSTEM,
        messages: ctx.history,
        tools: ctx.tools,
        maxTokens: 4096,
        stopSequences: [],
      });
    } catch (e) {
      // A host error (no provider, budget spent) goes back as it came.
      throw { tag: "host", val: hostError(e) };
    }
    return decide(response);
  },
};
