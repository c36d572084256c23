//! The process's stop signal, awaited by `chatnode serve` and `chatnode transcriber` alike.

/// Resolves on SIGTERM or SIGINT (never, if the handlers cannot be installed).
pub async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
