//! The few HTTP calls the load generator makes (register, sign in, create and join rooms,
//! /metrics), over reqwest: an async client shared by a worker's set-up tasks, which keeps one
//! connection alive per task, and a blocking one for the coordinator's calls. Plain http:// only.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

/// Time to open a connection, and for a whole call.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A node's answer: status and body.
pub type Answer = (u16, String);

/// `http://host:port` → ("host:port", its first IPv4 address): where the sockets connect to.
pub fn resolve(base: &str) -> Result<(String, SocketAddr), String> {
    let hostport = base
        .strip_prefix("http://")
        .unwrap_or(base)
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let with_port = if hostport.contains(':') {
        hostport.clone()
    } else {
        format!("{hostport}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{base}: {e}"))?
        .find(|a| a.is_ipv4())
        .ok_or_else(|| format!("{base}: no IPv4 address"))?;
    Ok((hostport, addr))
}

/// A worker's client: connections are kept alive and shared by its set-up tasks.
pub fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| describe(&e))
}

/// One call with an optional bearer token and JSON body.
pub async fn call(
    client: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Answer, String> {
    let mut req = client.request(method, format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.map_err(|e| describe(&e))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| describe(&e))?;
    Ok((status, text))
}

/// One blocking call (the coordinator's few: rooms before the run, /metrics at each phase).
pub fn call_blocking(
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Answer, String> {
    static CLIENT: OnceLock<Result<reqwest::blocking::Client, String>> = OnceLock::new();
    let client = CLIENT
        .get_or_init(|| {
            reqwest::blocking::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(CALL_TIMEOUT)
                .build()
                .map_err(|e| describe(&e))
        })
        .as_ref()
        .map_err(Clone::clone)?;
    let mut req = client.request(method, format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req
        .send()
        .map_err(|e| format!("{base}: {}", describe(&e)))?;
    let status = resp.status().as_u16();
    let text = resp
        .text()
        .map_err(|e| format!("{base}: {}", describe(&e)))?;
    Ok((status, text))
}

/// A short, stable reason for a failed call: what failed and the innermost cause (reqwest's own
/// message names only the URL), so that failures group well in the summary.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "http timeout".into();
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let what = if e.is_connect() {
        "http connect"
    } else {
        "http"
    };
    let cause = cause.to_string();
    match cause.find(" (os error") {
        Some(i) => format!("{what}: {}", &cause[..i]),
        None => format!("{what}: {cause}"),
    }
}

/// The `code` of a chatnode error body, or the status.
pub fn error_code(status: u16, body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(String::from))
        .map(|c| format!("http {status} {c}"))
        .unwrap_or_else(|| format!("http {status}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_come_from_the_body_when_it_has_one() {
        let body = r#"{"error":{"code":"username_taken","message":"x"}}"#;
        assert_eq!(error_code(409, body), "http 409 username_taken");
        assert_eq!(error_code(502, "<html>bad gateway</html>"), "http 502");
    }

    #[test]
    fn resolves_a_node_address() {
        let (host, addr) = resolve("http://127.0.0.1:8080/").unwrap();
        assert_eq!(host, "127.0.0.1:8080");
        assert_eq!(addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(resolve("http://127.0.0.1").unwrap().1.port(), 80);
    }

    #[test]
    fn a_refused_connection_says_so() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = call_blocking(
            &format!("http://127.0.0.1:{port}"),
            Method::GET,
            "/metrics",
            None,
            None,
        )
        .unwrap_err();
        assert!(e.contains("http connect"), "{e}");
    }
}
