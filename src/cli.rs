//! The small commands beside `serve`: `healthcheck` (for container health checks without curl)
//! `load-demo` and `migrate`.

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

/// The Redis mode of the settings, for `check-config`: one Redis (embedded or at a URL), or a
/// cluster and, when it can be reached within a few seconds, its number of masters.
pub fn describe_redis(settings: &Settings) -> String {
    if !settings.redis.is_cluster() {
        return if settings.redis.url.is_empty() {
            "redis: single (embedded redis-server)".into()
        } else {
            format!(
                "redis: single ({})",
                crate::settings::mask_url_password(&settings.redis.url)
            )
        };
    }
    let seeds = settings.redis.cluster_seeds().len();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return format!("redis: cluster ({seeds} seeds; not checked: {e})"),
    };
    let settings = Arc::new(settings.clone());
    let masters = rt.block_on(async move {
        let connect = Store::connect("", settings);
        match tokio::time::timeout(Duration::from_secs(5), connect).await {
            Ok(Ok(store)) => Ok(store.topology().masters.len()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("no answer in 5 s".to_string()),
        }
    });
    match masters {
        Ok(n) => format!("redis: cluster, {n} masters ({seeds} seeds)"),
        Err(e) => format!("redis: cluster ({seeds} seeds; unreachable: {e})"),
    }
}

/// Runs `work` on a store for the configured Redis (or the embedded one's data folder, with no
/// node running on it), stopping the embedded Redis afterwards.
fn with_store<T, F, Fut>(name: &str, settings: Settings, work: F) -> Result<T, String>
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("{name}: {e}"))?;
    rt.block_on(async move {
        let settings = Arc::new(settings);
        let mut embedded = None;
        let url = if settings.redis.url.is_empty() && !settings.redis.is_cluster() {
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
        let result = work(store).await;
        if let Some(mut p) = embedded {
            p.stop(Duration::from_secs(10)).await;
        }
        result
    })
}

/// Converts the keys of the older layout into today's (`store::migrate`); safe to run again.
pub fn migrate(settings: Settings) -> ExitCode {
    let result = with_store("migrate", settings, |store| async move {
        store.migrate().await.map_err(|e| e.to_string())
    });
    match result {
        Ok(m) => {
            println!(
                "migrated: {} messages, {} mention lists, {} member sets, {} membership sets, \
                 {} activity sets, {} session indexes, {} audio clips, {} online entries; {} old \
                 keys left in place (no channel to place them in)",
                m.messages,
                m.mentions,
                m.members,
                m.memberships,
                m.activity,
                m.sessions,
                m.audio,
                m.online,
                m.left
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("migrate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the demo users, channels and messages into the configured Redis (or the embedded one's
/// data folder, with no node running on it).
pub fn load_demo(settings: Settings) -> ExitCode {
    let result = with_store("load-demo", settings, |store| async move {
        store.load_demo().await.map_err(|e| e.to_string())
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
