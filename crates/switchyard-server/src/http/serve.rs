//! Serving: the accept loop (each connection on its own task under the client limits of
//! [`super::connection`]), hot reloads on SIGHUP, the online posteriors saved in the background, and a graceful
//! shutdown on Ctrl-C or SIGTERM.

use std::sync::Arc;

use crate::http::{app, connection};
use crate::learning;
use crate::state::AppState;

/// Serves `state` on the configured address until Ctrl-C or SIGTERM, then drains in-flight requests for at
/// most `server.shutdown_grace_ms`, closes what is left, and writes what the decision log still holds.
/// SIGHUP reloads the routers from disk without dropping requests.
pub async fn serve(state: Arc<AppState>) -> std::io::Result<()> {
    let addr = state.config.listen_addr().map_err(std::io::Error::other)?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let models = state.routers().main.manifest.models.len();
    tracing::info!("switchyard listening on http://{} ({models} models)", listener.local_addr()?);
    for warning in state.config.log.warnings() {
        tracing::warn!("{warning}");
    }
    #[cfg(unix)]
    tokio::spawn(reload_on_sighup(state.clone()));
    if let Some(learning) = state.learning.clone() {
        tokio::spawn(save_learning(learning));
    }
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(accept(listener, state.clone(), stopped));
    shutdown_signal().await;
    let _ = stopping.send(true);
    // The accept loop and every connection hold a receiver: the channel closes when the last one ends.
    let grace = std::time::Duration::from_millis(state.config.server.shutdown_grace_ms);
    if tokio::time::timeout(grace, stopping.closed()).await.is_err() {
        tracing::warn!(
            "shutdown: requests still in flight after {} ms (server.shutdown_grace_ms); closing them",
            grace.as_millis()
        );
    }
    if let Some(log) = &state.log {
        tracing::info!("writing the decision log's queue to {}", log.location());
    }
    let flushing = state.clone();
    let _ = tokio::task::spawn_blocking(move || {
        if let Some(learning) = &flushing.learning {
            if let Err(e) = learning.save() {
                tracing::error!("cannot write the online posteriors to {}: {e}", learning.path().display());
            }
        }
        if let Some(log) = &flushing.log {
            log.shutdown();
        }
    })
    .await;
    Ok(())
}

/// Accepts connections until `stopping` turns true, each served on its own task under the client limits
/// ([`connection`]).
async fn accept(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let app = app(state.clone());
    let mut warned = false;
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, most often: wait for connections to close rather than spin.
                    if !std::mem::replace(&mut warned, true) {
                        tracing::warn!("cannot accept connections: {e}");
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = async { let _ = stopping.wait_for(|s| *s).await; } => return,
        };
        warned = false;
        let _ = stream.set_nodelay(true);
        let metrics = state.clone();
        let conn = state.connections.open();
        tokio::spawn(connection::serve_connection(
            stream,
            conn,
            app.clone(),
            state.connections.clone(),
            stopping.clone(),
            move |why| metrics.metrics.connection_closed(why.label()),
        ));
    }
}

/// Writes the online posteriors to their state file when they changed, every [`learning::SAVE_EVERY`].
async fn save_learning(learning: Arc<learning::Learning>) {
    let mut warned = false;
    loop {
        tokio::time::sleep(learning::SAVE_EVERY).await;
        let worker = learning.clone();
        match tokio::task::spawn_blocking(move || worker.save()).await {
            Ok(Ok(())) => warned = false,
            Ok(Err(e)) if !warned => {
                tracing::warn!("cannot write the online posteriors to {}: {e}", learning.path().display());
                warned = true;
            }
            _ => {}
        }
    }
}

#[cfg(unix)]
async fn reload_on_sighup(state: Arc<AppState>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
    while hangups.recv().await.is_some() {
        let worker = state.clone();
        match tokio::task::spawn_blocking(move || worker.reload()).await {
            Ok(Ok(report)) => tracing::info!(generation = report.generation, "SIGHUP: router reloaded"),
            Ok(Err(e)) => tracing::error!("SIGHUP: reload failed, the routers in service stay: {e}"),
            Err(e) => tracing::error!("SIGHUP: reload task failed: {e}"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}
