// An Agent Host tool written in JavaScript: `convert_case` rewrites text in
// another case (upper, lower, title, snake, kebab, camel).
//
// Build: npm ci && npm run build (scripts/build-plugins.sh does this).
// Exports follow the WIT: the `tool` interface is an exported object with
// `describe` and `invoke`; throwing a `{ tag, val }` variant returns a
// `tool-error`.

const CASES = ["upper", "lower", "title", "snake", "kebab", "camel"];

const SCHEMA = {
  type: "object",
  properties: {
    text: { type: "string", description: "The text to convert" },
    to: { type: "string", enum: CASES, description: "The case to convert to" },
  },
  required: ["text", "to"],
  additionalProperties: false,
};

function words(text) {
  return text
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .split(/[^A-Za-z0-9]+/)
    .filter((w) => w.length > 0);
}

function convert(text, to) {
  const ws = words(text);
  switch (to) {
    case "upper":
      return text.toUpperCase();
    case "lower":
      return text.toLowerCase();
    case "title":
      return ws.map((w) => w[0].toUpperCase() + w.slice(1).toLowerCase()).join(" ");
    case "snake":
      return ws.map((w) => w.toLowerCase()).join("_");
    case "kebab":
      return ws.map((w) => w.toLowerCase()).join("-");
    case "camel":
      return ws
        .map((w, i) => (i === 0 ? w.toLowerCase() : w[0].toUpperCase() + w.slice(1).toLowerCase()))
        .join("");
  }
  return null;
}

function invalid(message) {
  return { tag: "invalid-input", val: message };
}

export const tool = {
  describe() {
    return [
      {
        name: "convert_case",
        description: `Convert text to another case: ${CASES.join(", ")}.`,
        inputSchema: JSON.stringify(SCHEMA),
      },
    ];
  },

  invoke(call) {
    if (call.name !== "convert_case") {
      throw invalid(`this component has no tool \`${call.name}\``);
    }
    let input;
    try {
      input = JSON.parse(call.input);
    } catch (e) {
      throw invalid(`input is not JSON: ${e.message}`);
    }
    if (typeof input.text !== "string") {
      throw invalid("`text` must be a string");
    }
    const out = convert(input.text, input.to);
    if (out === null) {
      throw invalid(`\`to\` must be one of ${CASES.join(", ")}`);
    }
    return { content: [{ tag: "text", val: out }] };
  },
};
