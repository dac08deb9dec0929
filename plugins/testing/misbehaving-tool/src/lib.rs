//! Test fixture for the host's limits: each tool misbehaves in one way.
//! Never installed by default; the host's tests load it to prove that a
//! faulty plugin gets a clear error and the host keeps serving.

wit_bindgen::generate!({ world: "tool-plugin", path: "../../../wit/v0.2.0" });

use agenthost::plugin::log;
use agenthost::plugin::shell::{self, Command};
use agenthost::plugin::types::{ContentPart, HostError, ToolSpec, ToolUse};
use exports::agenthost::plugin::tool::{Guest, ToolError, ToolOutput};

const BEHAVIOURS: [(&str, &str); 7] = [
    ("spin", "loops forever"),
    ("allocate", "allocates until it hits the memory cap"),
    ("panic", "panics"),
    ("flood", "returns a 16 MiB string"),
    ("echo", "returns its input (the well-behaved control)"),
    ("use_shell", "calls the shell capability"),
    (
        "chatty",
        "prints to stdout and stderr and logs, then succeeds",
    ),
];

struct Misbehaving;

impl Guest for Misbehaving {
    fn describe() -> Vec<ToolSpec> {
        BEHAVIOURS
            .iter()
            .map(|(name, what)| ToolSpec {
                name: (*name).into(),
                description: format!("Test fixture: {what}"),
                input_schema: r#"{"type":"object"}"#.into(),
            })
            .collect()
    }

    fn invoke(call: ToolUse) -> Result<ToolOutput, ToolError> {
        match call.name.as_str() {
            "spin" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "allocate" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("the misbehaving tool panicked on purpose"),
            "flood" => Ok(ToolOutput {
                content: vec![ContentPart::Text("x".repeat(16 << 20))],
            }),
            "echo" => Ok(ToolOutput {
                content: vec![ContentPart::Text(call.input)],
            }),
            "chatty" => {
                println!("printed to stdout");
                eprintln!("printed to stderr");
                log::log(log::Level::Info, "a log line");
                Ok(ToolOutput {
                    content: vec![ContentPart::Text("done".into())],
                })
            }
            "use_shell" => {
                let cmd = Command {
                    command: "true".into(),
                    cwd: None,
                    env: Vec::new(),
                    timeout_ms: None,
                };
                match shell::run(&cmd) {
                    Ok(out) => Ok(ToolOutput {
                        content: vec![ContentPart::Text(out.stdout)],
                    }),
                    Err(HostError::Denied(m)) => Err(ToolError::Failed(format!("denied: {m}"))),
                    Err(HostError::NoSandbox(m)) => {
                        Err(ToolError::Failed(format!("no-sandbox: {m}")))
                    }
                    Err(e) => Err(ToolError::Failed(format!("{e:?}"))),
                }
            }
            other => Err(ToolError::InvalidInput(format!("no tool `{other}`"))),
        }
    }
}

export!(Misbehaving);
