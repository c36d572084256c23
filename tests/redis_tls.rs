//! `rediss://`: a node talking to a real redis-server that listens only on TLS (`--port 0`),
//! with certificates made here by `openssl`: verified against `redis.tls_ca_file`, refused
//! without it, and `#insecure` skipping verification.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Runs openssl in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A self-signed CA: `<name>.key` and `<name>.pem` in `dir`.
fn self_signed_ca(dir: &Path, name: &str, subject: &str) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &pem,
            "-days", "2", "-subj", subject,
        ],
    );
}

/// A CA, and a server certificate it signed for 127.0.0.1 and localhost.
fn make_certs(dir: &Path) {
    self_signed_ca(dir, "ca", "/CN=chatnode test CA");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.cnf",
        ],
    );
    // Another CA that signed nothing here.
    self_signed_ca(dir, "other", "/CN=someone else");
}

/// redis-server listening on TLS only; stopped when dropped.
struct TlsRedis {
    _child: tokio::process::Child,
    port: u16,
}

impl TlsRedis {
    async fn start(dir: &Path) -> TlsRedis {
        let port = chatnode::redis_server::free_port().unwrap();
        let child = tokio::process::Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1 127.0.0.2",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--tls-port")
            .arg(port.to_string())
            .arg("--tls-cert-file")
            .arg(dir.join("server.pem"))
            .arg("--tls-key-file")
            .arg(dir.join("server.key"))
            .arg("--tls-ca-cert-file")
            .arg(dir.join("ca.pem"))
            .args(["--tls-auth-clients", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "redis-server listens on TLS");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        TlsRedis {
            _child: child,
            port,
        }
    }
}

#[tokio::test]
async fn a_node_uses_redis_over_tls_verified_against_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let redis = TlsRedis::start(dir.path()).await;
    let url = format!("rediss://127.0.0.1:{}/", redis.port);

    // With the CA: two nodes serve accounts, posts, history and live delivery across nodes
    // (the pub/sub bridge connects over TLS too).
    let mut s = settings(&url);
    s.redis.tls_ca_file = dir.path().join("ca.pem");
    assert!(s.validate().is_ok());
    let a = node(s.clone());
    let mut s_local = s.clone();
    s_local.redis.url = format!("rediss://localhost:{}/", redis.port);
    let b = node(s_local);
    let (status, ready) = get(&a.http_url(), "/readyz", "").await;
    assert_eq!(
        (status, ready["redis"].as_str()),
        (200, Some("ok")),
        "{ready}"
    );
    let ta = register(&a.http_url(), "secure").await;
    let tb = register(&b.http_url(), "sealed").await;
    for (n, t) in [(&a, &ta), (&b, &tb)] {
        join(&n.http_url(), t, "general").await;
    }
    let mut ws = Ws::subscribed(&b, &tb, &["general"]).await;
    let (status, v) = post(
        &a.http_url(),
        "/api/channels/general/messages",
        &ta,
        json!({"text": "over TLS"}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(ws.recv_message("general").await["text"], "over TLS");
    let (_, page) = get(&b.http_url(), "/api/channels/general/messages", &tb).await;
    assert_eq!(
        page["messages"].as_array().unwrap().last().unwrap()["text"],
        "over TLS"
    );

    // Without the CA the public roots do not know this server: the node does not start.
    let err = chatnode::spawn(settings(&url)).err().expect("refused");
    assert!(err.contains("cannot reach Redis"), "{err}");
    assert!(err.contains("UnknownIssuer"), "{err}");
    // The certificate must name the host of the URL.
    let mut s = settings(&format!("rediss://127.0.0.2:{}/", redis.port));
    s.redis.tls_ca_file = dir.path().join("ca.pem");
    let err = chatnode::spawn(s).err().expect("refused");
    assert!(err.contains("not valid for name"), "{err}");
    // Nor with another CA, nor speaking plain Redis to the TLS port.
    let mut s = settings(&url);
    s.redis.tls_ca_file = dir.path().join("other.pem");
    let err = chatnode::spawn(s).err().expect("refused");
    assert!(
        err.contains("cannot reach Redis") && err.contains("UnknownIssuer"),
        "{err}"
    );
    let plain = format!("redis://127.0.0.1:{}/", redis.port);
    let err = chatnode::spawn(settings(&plain)).err().expect("refused");
    // The TLS port drops a plain-text client; how the drop shows depends on timing.
    let dropped = [
        "reset by peer",
        "Broken pipe",
        "closed",
        "end of file",
        "EOF",
    ];
    assert!(
        err.contains("cannot reach Redis") && dropped.iter().any(|d| err.contains(d)),
        "{err}"
    );
    // `#insecure` skips verification.
    let insecure = node(settings(&format!("{url}#insecure")));
    let (status, _) = get(&insecure.http_url(), "/readyz", "").await;
    assert_eq!(status, 200);
    let (_, me) = get(&insecure.http_url(), "/api/me", &ta).await;
    assert_eq!(me["username"], "secure");

    // Settings that cannot work are named.
    let mut s = settings(&url);
    s.redis.tls_ca_file = dir.path().join("missing.pem");
    let err = chatnode::spawn(s).err().unwrap();
    assert!(err.contains("redis.tls_ca_file"), "{err}");
    let mut s = settings(&url);
    s.redis.tls_ca_file = dir.path().join("san.cnf");
    let err = chatnode::spawn(s).err().unwrap();
    assert!(err.contains("no PEM certificate"), "{err}");
    let mut s = settings(&plain);
    s.redis.tls_ca_file = dir.path().join("ca.pem");
    let err = s.validate().unwrap_err().to_string();
    assert!(err.contains("redis.tls_ca_file"), "{err}");
}
