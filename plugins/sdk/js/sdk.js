// Helpers for Agent Host plugins in JavaScript (componentize-js).
//
// Shapes follow the WIT: records are objects with camelCase fields,
// variants are { tag, val }, enums are strings, a missing option is
// undefined. Throwing one of the error variants below from `invoke` or
// `step` returns it as the call's error.

// --- tools ---

/** An error to throw from `invoke` when the input makes no sense; the model sees it. */
export function invalidInput(message) {
  return { tag: "invalid-input", val: message };
}

/** An error to throw from `invoke` when the tool ran and failed. */
export function failed(message) {
  return { tag: "failed", val: message };
}

/** The call's input as an object. The host has already checked it against the schema. */
export function parseInput(call) {
  let args;
  try {
    args = JSON.parse(call.input);
  } catch (e) {
    throw invalidInput(`input is not JSON: ${e.message}`);
  }
  if (typeof args !== "object" || args === null || Array.isArray(args)) {
    throw invalidInput("input must be a JSON object");
  }
  return args;
}

/** A text content part. */
export function text(s) {
  return { tag: "text", val: s };
}

/** A tool's result from content parts (strings become text parts). */
export function output(...parts) {
  return { content: parts.map((p) => (typeof p === "string" ? text(p) : p)) };
}

/** A tool spec; `schema` is the input's JSON Schema as an object. */
export function spec(name, description, schema) {
  return { name, description, inputSchema: JSON.stringify(schema) };
}

/** The host error a failed host call threw ({ tag, val }). */
export function hostError(e) {
  return e && e.payload !== undefined ? e.payload : { tag: "failed", val: String(e) };
}

// --- policies ---

/** An error to throw from `step` when the policy gives up. */
export function policyFailed(message) {
  return { tag: "failed", val: message };
}

/** Say this to the person and wait for their next message. */
export function reply(message, state) {
  return { decision: { tag: "reply", val: message }, state };
}

/** The task is done; the message is the final answer. */
export function finish(message, state) {
  return { decision: { tag: "finish", val: message }, state };
}

/** Run these tool uses (not empty), then step again with their results. */
export function act(calls, message, state) {
  return { decision: { tag: "act", val: { text: message, calls } }, state };
}

/** Do what the model answered: its tool uses if any, else reply with its text. */
export function decide(response, state) {
  const said = response.parts.filter((p) => p.tag === "text").map((p) => p.val).join("\n");
  const calls = response.parts.filter((p) => p.tag === "tool-use").map((p) => p.val);
  return calls.length > 0 ? act(calls, said || undefined, state) : reply(said, state);
}

/** What the person said last (tool results travel in user messages too, without text). */
export function lastUserText(history) {
  for (let i = history.length - 1; i >= 0; i--) {
    const m = history[i];
    if (m.role !== "user") continue;
    const said = m.parts.filter((p) => p.tag === "text").map((p) => p.val).join("\n");
    if (said) return said;
  }
  return undefined;
}

/** The tool results at the end of the history (those of the last step's calls), or []. */
export function latestToolResults(history) {
  const last = history[history.length - 1];
  if (!last || last.role !== "user") return [];
  return last.parts.filter((p) => p.tag === "tool-result").map((p) => p.val);
}
