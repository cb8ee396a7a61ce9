//! MCP over the device channel (spec §6): the device is the MCP server,
//! lty the client. After the server hello lty sends `initialize` and pages
//! through `tools/list`; the tools the model may use (never the user-only
//! ones) are offered to the turn as function tools, named with `_` for `.`
//! (most LLM APIs allow only `[A-Za-z0-9_-]`), and a tool call becomes a
//! `tools/call` with the dotted name and arguments coerced to the tool's
//! schema.
//!
//! Requests carry integer ids from 1 upward, unique per connection; a
//! device error (which has no `code`, and may not even be valid JSON)
//! never closes the channel: a request the device does not answer ends by
//! timeout.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use lty_core::chat::{ToolCall, ToolSpec};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};

use super::session::Outbound;
use crate::app::chat::turn::ToolBox;

/// Most `tools/list` pages followed (a device lists a few dozen tools).
const MAX_PAGES: usize = 32;

/// A tool the device offers the model.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceTool {
    /// The device's dotted name (`self.audio_speaker.set_volume`).
    pub name: String,
    /// The name the model sees (`self_audio_speaker_set_volume`).
    pub llm_name: String,
    pub description: String,
    /// The tool's `inputSchema`.
    pub schema: Value,
}

/// The client side of one connection's MCP session.
#[derive(Debug)]
pub struct McpClient {
    out: mpsc::Sender<Outbound>,
    next_id: AtomicI64,
    pending: Mutex<HashMap<i64, oneshot::Sender<Result<Value, String>>>>,
    tools: Mutex<Vec<DeviceTool>>,
    timeout: Duration,
}

/// The name a model may call for a dotted device tool name.
pub fn llm_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Whether lty may send `name` to the device: the firmware pastes names
/// into its error replies unescaped.
fn sendable(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control())
}

/// Converts a model's arguments to what the tool's schema declares (the
/// device treats an argument of the wrong JSON type as missing): `"40"` to
/// 40 for an integer, `"true"` to true for a boolean, numbers to text for a
/// string.
pub fn coerce_arguments(schema: &Value, args: Value) -> Value {
    let Value::Object(mut args) = args else {
        return Value::Object(Map::new());
    };
    if let Some(props) = schema["properties"].as_object() {
        for (name, prop) in props {
            let Some(value) = args.get_mut(name) else {
                continue;
            };
            let coerced = match (prop["type"].as_str(), &*value) {
                (Some("integer"), Value::String(s)) => s
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .map(|n| json!(n.trunc() as i64)),
                (Some("integer"), Value::Number(n)) if !n.is_i64() => {
                    n.as_f64().map(|f| json!(f.trunc() as i64))
                }
                (Some("boolean"), Value::String(s)) => match s.trim() {
                    "true" | "1" => Some(json!(true)),
                    "false" | "0" => Some(json!(false)),
                    _ => None,
                },
                (Some("string"), Value::Number(n)) => Some(json!(n.to_string())),
                (Some("string"), Value::Bool(b)) => Some(json!(b.to_string())),
                _ => None,
            };
            if let Some(c) = coerced {
                *value = c;
            }
        }
    }
    Value::Object(args)
}

impl McpClient {
    /// A client sending its requests through `out`.
    pub fn new(out: mpsc::Sender<Outbound>, timeout: Duration) -> Self {
        Self {
            out,
            next_id: AtomicI64::new(1),
            pending: Mutex::new(HashMap::new()),
            tools: Mutex::new(Vec::new()),
            timeout,
        }
    }

    /// Sends one request and waits for its result (or the device's error
    /// message, or a timeout).
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if id > i64::from(i32::MAX) {
            return Err("request ids exhausted on this connection".into());
        }
        let (tx, rx) = oneshot::channel();
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(id, tx);
        }
        let message = json!({
            "type": "mcp",
            "payload": { "jsonrpc": "2.0", "id": id, "method": method, "params": params },
        });
        if self.out.send(Outbound::now(message)).await.is_err() {
            return Err("the channel closed".into());
        }
        let answer = tokio::time::timeout(self.timeout, rx).await;
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(&id);
        }
        match answer {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the channel closed".into()),
            Err(_) => Err(format!("the device did not answer {method} in time")),
        }
    }

    /// Hands a device's `mcp` payload to the request it answers; anything
    /// else (notifications, unknown ids) is ignored.
    pub fn on_payload(&self, payload: &Value) {
        let Some(id) = payload["id"].as_i64() else {
            return;
        };
        let waiter = self.pending.lock().ok().and_then(|mut p| p.remove(&id));
        let Some(waiter) = waiter else {
            return;
        };
        let result = match (payload.get("result"), payload.get("error")) {
            (Some(result), _) => Ok(result.clone()),
            (None, Some(error)) => Err(error["message"]
                .as_str()
                .unwrap_or("the device reported an error")
                .to_owned()),
            (None, None) => Err("an answer with neither result nor error".into()),
        };
        let _ = waiter.send(result);
    }

    /// `initialize`, then every page of `tools/list`; the tools the model
    /// may use are kept for the turns of this connection. A listing that
    /// fails on its cursor is restarted once from the first page.
    pub async fn start(&self) -> Result<usize, String> {
        self.request(
            "initialize",
            json!({
                "protocolVersion": "2024-11-05",
                "capabilities": {},
                "clientInfo": { "name": "lty", "version": env!("CARGO_PKG_VERSION") },
            }),
        )
        .await?;
        let tools = match self.list_tools().await {
            Ok(tools) => tools,
            Err(_) => self.list_tools().await?,
        };
        let count = tools.len();
        if let Ok(mut kept) = self.tools.lock() {
            *kept = tools;
        }
        Ok(count)
    }

    async fn list_tools(&self) -> Result<Vec<DeviceTool>, String> {
        let mut tools = Vec::new();
        let mut cursor = String::new();
        for _ in 0..MAX_PAGES {
            let page = self
                .request("tools/list", json!({ "cursor": cursor }))
                .await?;
            for tool in page["tools"].as_array().into_iter().flatten() {
                let user_only = tool["annotations"]["audience"]
                    .as_array()
                    .is_some_and(|a| a.iter().all(|v| v == "user") && !a.is_empty());
                let Some(name) = tool["name"].as_str().filter(|n| sendable(n)) else {
                    continue;
                };
                if user_only {
                    continue;
                }
                tools.push(DeviceTool {
                    name: name.to_owned(),
                    llm_name: llm_name(name),
                    description: tool["description"].as_str().unwrap_or("").to_owned(),
                    schema: tool
                        .get("inputSchema")
                        .cloned()
                        .unwrap_or_else(|| json!({ "type": "object", "properties": {} })),
                });
            }
            match page["nextCursor"].as_str().filter(|c| !c.is_empty()) {
                Some(next) => cursor = next.to_owned(),
                None => return Ok(rename_in_descriptions(tools)),
            }
        }
        Ok(rename_in_descriptions(tools))
    }

    /// The tools the model may use on this connection.
    pub fn tools(&self) -> Vec<DeviceTool> {
        self.tools.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Calls the tool the model knows as `llm_name` with the model's
    /// `arguments` (JSON text); the text the model reads back, an error
    /// included.
    pub async fn call(&self, llm_name: &str, arguments: &str) -> String {
        let Some(tool) = self.tools().into_iter().find(|t| t.llm_name == llm_name) else {
            return format!("error: no tool named {llm_name}");
        };
        let args: Value = serde_json::from_str(arguments).unwrap_or(Value::Null);
        let args = coerce_arguments(&tool.schema, args);
        let started = std::time::Instant::now();
        let answer = self
            .request(
                "tools/call",
                json!({ "name": tool.name, "arguments": args }),
            )
            .await;
        metrics::histogram!("lty_xiaozhi_tool_call_seconds")
            .record(started.elapsed().as_secs_f64());
        match answer {
            Ok(result) => {
                let text: Vec<&str> = result["content"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["text"].as_str())
                    .collect();
                metrics::counter!("lty_xiaozhi_tool_calls_total", "outcome" => "ok").increment(1);
                if text.is_empty() {
                    result.to_string()
                } else {
                    text.join("\n")
                }
            }
            Err(message) => {
                metrics::counter!("lty_xiaozhi_tool_calls_total", "outcome" => "error")
                    .increment(1);
                format!("error: {message}")
            }
        }
    }
}

/// The device's tools as the turn offers them to the model.
#[async_trait]
impl ToolBox for McpClient {
    fn specs(&self) -> Vec<ToolSpec> {
        self.tools()
            .into_iter()
            .map(|t| ToolSpec {
                name: t.llm_name,
                description: t.description,
                parameters: t.schema,
            })
            .collect()
    }

    async fn call(&self, call: &ToolCall) -> String {
        McpClient::call(self, &call.name, &call.arguments).await
    }
}

/// Device descriptions mention other tools by their dotted names: the model
/// must see the names it can call.
fn rename_in_descriptions(mut tools: Vec<DeviceTool>) -> Vec<DeviceTool> {
    let names: Vec<(String, String)> = tools
        .iter()
        .map(|t| (t.name.clone(), t.llm_name.clone()))
        .collect();
    for tool in &mut tools {
        for (dotted, plain) in &names {
            if tool.description.contains(dotted.as_str()) {
                tool.description = tool.description.replace(dotted.as_str(), plain);
            }
        }
    }
    tools
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_arguments_are_coerced_to_the_tool_schema() {
        let schema = json!({"type": "object", "properties": {
            "volume": {"type": "integer", "minimum": 0, "maximum": 100},
            "on": {"type": "boolean"},
            "theme": {"type": "string"},
        }});
        let got = coerce_arguments(
            &schema,
            json!({"volume": "40", "on": "true", "theme": 1, "extra": "x"}),
        );
        assert_eq!(
            got,
            json!({"volume": 40, "on": true, "theme": "1", "extra": "x"})
        );
        assert_eq!(
            coerce_arguments(&schema, json!({"volume": 40.7}))["volume"],
            40
        );
        assert_eq!(coerce_arguments(&schema, Value::Null), json!({}));
    }

    #[test]
    fn tool_names_become_function_names_and_back() {
        assert_eq!(
            llm_name("self.audio_speaker.set_volume"),
            "self_audio_speaker_set_volume"
        );
        assert!(sendable("self.reboot"));
        assert!(!sendable("bad\"name"));
        assert!(!sendable("bad\\name"));
        let tools = rename_in_descriptions(vec![
            DeviceTool {
                name: "self.a".into(),
                llm_name: "self_a".into(),
                description: "use self.b first".into(),
                schema: json!({}),
            },
            DeviceTool {
                name: "self.b".into(),
                llm_name: "self_b".into(),
                description: String::new(),
                schema: json!({}),
            },
        ]);
        assert_eq!(tools[0].description, "use self_b first");
    }
}
