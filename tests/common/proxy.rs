//! A TCP forwarder between the node and a real Redis that can go silent: `freeze` stops
//! forwarding on every connection open at that moment while keeping their sockets open, as a
//! half-open TCP connection does (a peer gone without a FIN or RST: a dead NAT entry, a pulled
//! cable). Connections made later are forwarded normally.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct FreezableProxy {
    pub port: u16,
    frozen: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
    stop: Arc<AtomicBool>,
}

impl FreezableProxy {
    /// Forwards a free loopback port to `127.0.0.1:<target>`, on a thread of its own (so it
    /// forwards while the test's runtime waits on a node starting).
    pub async fn start(target: u16) -> Self {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let port = std_listener.local_addr().unwrap().port();
        let frozen: Arc<Mutex<Vec<Arc<AtomicBool>>>> = Arc::default();
        let flags = frozen.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                while !stopping.load(Ordering::SeqCst) {
                    let accepted = tokio::time::timeout(
                        std::time::Duration::from_millis(200),
                        listener.accept(),
                    )
                    .await;
                    let Ok(Ok((client, _))) = accepted else {
                        continue;
                    };
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                        continue;
                    };
                    let flag = Arc::new(AtomicBool::new(false));
                    flags.lock().unwrap().push(flag.clone());
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(pump(cr, sw, flag.clone()));
                    tokio::spawn(pump(sr, cw, flag));
                }
            });
        });
        FreezableProxy { port, frozen, stop }
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Every connection open now stops forwarding, both ways, and stays open.
    pub fn freeze_open_connections(&self) {
        for f in self.frozen.lock().unwrap().drain(..) {
            f.store(true, Ordering::SeqCst);
        }
    }
}

impl Drop for FreezableProxy {
    fn drop(&mut self) {
        // The thread ends its runtime, and with it every forwarded connection.
        self.stop.store(true, Ordering::SeqCst);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.load(Ordering::SeqCst) {
            // Silent from now on: hold both sockets open and forward nothing.
            let _keep = (from, to);
            std::future::pending::<()>().await;
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
