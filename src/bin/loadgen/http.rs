//! A minimal HTTP/1.1 client for the few JSON calls the load generator makes (register, login,
//! create and join rooms, /metrics): keep-alive over tokio for the workers, one-shot blocking
//! for the coordinator. Plain http:// only.

use std::io::{Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `http://host:port` → ("host:port", socket address).
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

fn request_bytes(
    host: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
    keep_alive: bool,
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// What the head of a response says.
struct Head {
    status: u16,
    len: Option<usize>,
    chunked: bool,
    close: bool,
    body_start: usize,
}

fn parse_head(buf: &[u8]) -> Option<Result<Head, String>> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split("\r\n");
    let status = match lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
    {
        Some(s) => s,
        None => return Some(Err("bad HTTP status line".into())),
    };
    let mut head = Head {
        status,
        len: None,
        chunked: false,
        close: false,
        body_start: end + 4,
    };
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
        match k.as_str() {
            "content-length" => head.len = v.parse().ok(),
            "transfer-encoding" => head.chunked = v.contains("chunked"),
            "connection" => head.close = v == "close",
            _ => {}
        }
    }
    if status == 204 || status == 304 {
        head.len = Some(0);
    }
    Some(Ok(head))
}

/// Decodes a complete chunked body; None while incomplete.
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&b[..nl]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[nl + 2..];
        if size == 0 {
            return Some(out);
        }
        if b.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// A keep-alive connection to one node, reopened when the server closes it.
pub struct Conn {
    host: String,
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    pub fn new(base: &str) -> Result<Conn, String> {
        let (host, addr) = resolve(base)?;
        Ok(Conn {
            host,
            addr,
            stream: None,
            buf: Vec::with_capacity(4096),
        })
    }

    /// One request; retried once on a fresh connection when a kept-alive one was closed.
    pub async fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Result<(u16, String), String> {
        let reused = self.stream.is_some();
        match self.try_call(method, path, token, body).await {
            Err(_) if reused => {
                self.stream = None;
                self.try_call(method, path, token, body).await
            }
            other => other,
        }
    }

    async fn try_call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Result<(u16, String), String> {
        if self.stream.is_none() {
            let s = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(self.addr))
                .await
                .map_err(|_| "http connect timeout".to_string())?
                .map_err(|e| format!("http connect: {e}"))?;
            let _ = s.set_nodelay(true);
            self.stream = Some(s);
        }
        let stream = self.stream.as_mut().expect("connected above");
        let req = request_bytes(&self.host, method, path, token, body, true);
        let result = tokio::time::timeout(Duration::from_secs(30), async {
            stream
                .write_all(&req)
                .await
                .map_err(|e| format!("http write: {e}"))?;
            self.buf.clear();
            let mut chunk = [0u8; 8192];
            loop {
                if let Some(head) = parse_head(&self.buf) {
                    let head = head?;
                    let body = &self.buf[head.body_start..];
                    let done = if head.chunked {
                        dechunk(body)
                    } else if let Some(n) = head.len {
                        (body.len() >= n).then(|| body[..n].to_vec())
                    } else {
                        None
                    };
                    if let Some(b) = done {
                        return Ok((
                            head.status,
                            String::from_utf8_lossy(&b).into_owned(),
                            head.close,
                        ));
                    }
                }
                let n = stream
                    .read(&mut chunk)
                    .await
                    .map_err(|e| format!("http read: {e}"))?;
                if n == 0 {
                    return Err("http: connection closed".to_string());
                }
                self.buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .map_err(|_| "http timeout".to_string())
        .and_then(|r| r);
        match result {
            Ok((status, body, close)) => {
                if close {
                    self.stream = None;
                }
                Ok((status, body))
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }
}

/// One blocking request on its own connection (the coordinator's few calls).
pub fn call_blocking(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    let (host, addr) = resolve(base)?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("{base}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    s.write_all(&request_bytes(&host, method, path, token, body, false))
        .map_err(|e| format!("{base}: {e}"))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)
        .map_err(|e| format!("{base}: {e}"))?;
    let head = parse_head(&buf).ok_or_else(|| format!("{base}: incomplete answer"))??;
    let body = &buf[head.body_start..];
    let body = if head.chunked {
        dechunk(body).ok_or_else(|| format!("{base}: bad chunked body"))?
    } else {
        match head.len {
            Some(n) => body[..n.min(body.len())].to_vec(),
            None => body.to_vec(),
        }
    };
    Ok((head.status, String::from_utf8_lossy(&body).into_owned()))
}

/// The `code` of a chatnode error body, or the status.
pub fn error_code(status: u16, body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(String::from))
        .map(|c| format!("http {status} {c}"))
        .unwrap_or_else(|| format!("http {status}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads_and_chunks() {
        let raw = b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}";
        let h = parse_head(raw).unwrap().unwrap();
        assert_eq!((h.status, h.len, h.chunked), (201, Some(2), false));
        assert_eq!(dechunk(b"2\r\nab\r\n1\r\nc\r\n0\r\n\r\n").unwrap(), b"abc");
        assert!(dechunk(b"2\r\na").is_none());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n").is_none());
    }
}
