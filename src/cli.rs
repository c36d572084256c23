//! The small commands beside `serve`: `healthcheck` (for container health checks without curl)
//! and `load-demo`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::redis_server::RedisProcess;
use crate::settings::Settings;
use crate::store::Store;

/// GET /healthz on this node's port; exit 0 when it answers 200.
pub fn healthcheck(settings: &Settings) -> ExitCode {
    let host = match settings.http.host.as_str() {
        "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
        h => h,
    };
    let addr = format!("{host}:{}", settings.http.port);
    let ok = (|| -> std::io::Result<bool> {
        let sock: std::net::SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(&addr)?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        s.write_all(format!("GET /healthz HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf)?;
        let head = String::from_utf8_lossy(&buf[..n]);
        Ok(head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"))
    })();
    match ok {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("healthcheck: {addr}/healthz did not answer 200");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("healthcheck: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the demo users, channels and messages into the configured Redis (or the embedded one's
/// data folder, with no node running on it).
pub fn load_demo(settings: Settings) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("load-demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        let settings = Arc::new(settings);
        let mut embedded = None;
        let url = if settings.redis.url.is_empty() {
            let opts = crate::redis_server::embedded_options(&settings)?;
            let p = RedisProcess::start(&opts).await?;
            let url = p.url();
            embedded = Some(p);
            url
        } else {
            settings.redis.url.clone()
        };
        let store = Store::connect(&url, settings.clone()).await?;
        crate::store::setup::prepare(&store)
            .await
            .map_err(|e| e.to_string())?;
        let loaded = store.load_demo().await.map_err(|e| e.to_string())?;
        if let Some(mut p) = embedded {
            p.stop(Duration::from_secs(10)).await;
        }
        Ok::<_, String>(loaded)
    });
    match result {
        Ok(l) => {
            println!(
                "demo data loaded: {} new users, {} new messages (password for every demo user: {})",
                l.users,
                l.messages,
                crate::demo::DEMO_PASSWORD
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("load-demo: {e}");
            ExitCode::FAILURE
        }
    }
}
