//! How the gateway's own hyper clients (segment reads, the node's relay) reach a trickle
//! server: TCP with no delay, and for `https` rustls under the orchestrator trust policy.
//! One connector, so every orchestrator connection is checked the same way whichever client
//! made it.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::CONNECT_TIMEOUT;
use crate::tls::{orchestrator_client_config, OrchestratorTrust};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Dials TCP (no delay) and, for `https`, runs rustls with the orchestrator trust policy. TLS
/// configs are per port because certificate pins are per `host:port`.
#[derive(Clone)]
pub(crate) struct TrickleConnector {
    trust: OrchestratorTrust,
    tls: Arc<Mutex<HashMap<u16, TlsConnector>>>,
}

impl TrickleConnector {
    /// A connector checking orchestrator certificates with `trust`.
    pub(crate) fn new(trust: &OrchestratorTrust) -> TrickleConnector {
        TrickleConnector { trust: trust.clone(), tls: Arc::default() }
    }

    fn tls_for(&self, port: u16) -> TlsConnector {
        let mut configs = self.tls.lock().unwrap_or_else(|e| e.into_inner());
        configs
            .entry(port)
            .or_insert_with(|| {
                TlsConnector::from(Arc::new(orchestrator_client_config(&self.trust, &[b"http/1.1"], port)))
            })
            .clone()
    }
}

impl tower::Service<Uri> for TrickleConnector {
    type Response = TokioIo<TrickleStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = match uri.scheme_str() {
            Some("https") => Some(uri.port_u16().unwrap_or(443)),
            Some("http") => None,
            _ => return Box::pin(async { Err("unsupported URL scheme".into()) }),
        };
        let host = uri.host().unwrap_or_default().trim_matches(['[', ']']).to_owned();
        let port = uri.port_u16().unwrap_or(if tls.is_some() { 443 } else { 80 });
        let connector = tls.map(|port| self.tls_for(port));
        Box::pin(async move {
            let dial = async {
                let tcp = TcpStream::connect((host.as_str(), port)).await?;
                let _ = tcp.set_nodelay(true);
                let Some(connector) = connector else {
                    return Ok::<_, BoxError>(TrickleStream::Plain(tcp));
                };
                let name = match host.parse::<IpAddr>() {
                    Ok(ip) => ServerName::IpAddress(ip.into()),
                    Err(_) => ServerName::try_from(host.clone()).map_err(|_| "invalid server name")?,
                };
                Ok(TrickleStream::Tls(Box::new(connector.connect(name, tcp).await?)))
            };
            match tokio::time::timeout(CONNECT_TIMEOUT, dial).await {
                Ok(stream) => Ok(TokioIo::new(stream?)),
                Err(_) => Err(format!("connecting took longer than {CONNECT_TIMEOUT:?}").into()),
            }
        })
    }
}

/// One connection to a trickle server, plaintext or TLS.
pub(crate) enum TrickleStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for TrickleStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for TrickleStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TrickleStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            TrickleStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TrickleStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TrickleStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            TrickleStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    // Vectored writes let hyper send a body chunk with its chunked-encoding frame in one
    // `writev` instead of copying it into its own buffer first (rustls copies anyway).
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TrickleStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            TrickleStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            TrickleStream::Plain(s) => s.is_write_vectored(),
            TrickleStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TrickleStream::Plain(s) => Pin::new(s).poll_flush(cx),
            TrickleStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TrickleStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            TrickleStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
