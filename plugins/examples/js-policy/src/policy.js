// An Agent Host policy written in JavaScript: `tool-filter` asks the model
// what to do, like the template, but offers it only the tools the
// operator's config names ({"tools": ["bash"]}; all of them if none).
//
// Build: npm ci && npm run build (scripts/build-plugins.sh does this).
// `sdk.js` is the helper module `agenthost plugin new --lang js` puts in a
// project; here it comes from plugins/sdk/js, so the build runs from plugins/
// (componentize-js reads only files under the directory it runs in).

import { complete } from "agenthost:plugin/llm@0.2.0";
import { decide, hostError, policyFailed } from "../../../sdk/js/sdk.js";

const SYSTEM = "You operate a Linux desktop for the person through the tools you are given.";

export const policy = {
  describe() {
    return { name: "tool-filter", description: "Asks the model, offering only the tools the config names" };
  },

  step(ctx) {
    const config = JSON.parse(ctx.config || "{}");
    const allowed = config.tools;
    if (allowed !== undefined && !Array.isArray(allowed)) {
      throw policyFailed("config `tools` must be a list of tool names");
    }
    const tools = allowed ? ctx.tools.filter((t) => allowed.includes(t.name)) : ctx.tools;
    let response;
    try {
      response = complete({ system: SYSTEM, messages: ctx.history, tools, maxTokens: 4096, stopSequences: [] });
    } catch (e) {
      throw { tag: "host", val: hostError(e) };
    }
    return decide(response);
  },
};
