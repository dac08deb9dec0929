//! Tool input schemas, checked by the host.
//!
//! A tool declares a JSON Schema for its input. The host compiles it once
//! when the plugin version loads (a schema that is not valid JSON Schema
//! refuses the load, so `plugin check` and `install` name it), then checks
//! every call's input before the plugin runs. A model that sent a bad call
//! gets `invalid-input` naming where and which rule, and can fix its call;
//! the plugin never sees input its own schema rules out.

use serde_json::Value;

/// How many violations one message names (the first few are what a model
/// needs to fix its call).
const MAX_REPORTED: usize = 3;

/// A tool's input schema, compiled.
pub struct InputSchema(jsonschema::Validator);

impl std::fmt::Debug for InputSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InputSchema")
    }
}

impl InputSchema {
    /// Compiles `schema`, checking it against the JSON Schema meta-schema
    /// first; the error says what is wrong and where.
    pub fn compile(schema: &Value) -> Result<Self, String> {
        jsonschema::validator_for(schema)
            .map(Self)
            .map_err(|e| format!("{} (at `{}`)", e, pointer(e.instance_path().as_str())))
    }

    /// Whether `input` satisfies the schema; otherwise a message naming
    /// each violation's place in the input and the rule it breaks.
    pub fn check(&self, input: &Value) -> Result<(), String> {
        // The common case, without building error reports.
        if self.0.is_valid(input) {
            return Ok(());
        }
        let mut problems = Vec::new();
        let mut more = 0;
        for error in self.0.iter_errors(input) {
            if problems.len() == MAX_REPORTED {
                more += 1;
                continue;
            }
            problems.push(format!(
                "at `{}`: {} (rule `{}`)",
                pointer(error.instance_path().as_str()),
                error,
                error.schema_path().as_str()
            ));
        }
        if problems.is_empty() {
            return Ok(());
        }
        let mut message = format!(
            "the input does not match the tool's input schema: {}",
            problems.join("; ")
        );
        if more > 0 {
            message.push_str(&format!("; and {more} more"));
        }
        Err(message)
    }
}

/// A JSON pointer as shown to people: the root is `/`.
fn pointer(p: &str) -> &str {
    if p.is_empty() {
        "/"
    } else {
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_schema_that_is_not_json_schema_is_refused_with_its_place() {
        let e = InputSchema::compile(&json!({"type": "objekt", "properties": 5})).unwrap_err();
        assert!(e.contains("/properties") || e.contains("objekt"), "{e}");
    }

    #[test]
    fn violations_name_the_place_and_the_rule() {
        let schema = InputSchema::compile(&json!({
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
            "additionalProperties": false,
        }))
        .unwrap();
        assert!(schema.check(&json!({"command": "ls"})).is_ok());
        let e = schema.check(&json!({"command": 5})).unwrap_err();
        assert!(
            e.contains("at `/command`") && e.contains("/properties/command/type"),
            "{e}"
        );
        let e = schema
            .check(&json!({"command": "ls", "sudo": true}))
            .unwrap_err();
        assert!(
            e.contains("additionalProperties") && e.contains("'sudo'"),
            "{e}"
        );
        let e = schema.check(&json!({})).unwrap_err();
        assert!(e.contains("at `/`") && e.contains("required"), "{e}");
    }

    #[test]
    fn a_long_list_of_violations_is_cut_short() {
        let schema = InputSchema::compile(&json!({
            "type": "object",
            "additionalProperties": {"type": "string"},
        }))
        .unwrap();
        let e = schema
            .check(&json!({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}))
            .unwrap_err();
        assert!(e.ends_with("and 2 more"), "{e}");
    }
}
