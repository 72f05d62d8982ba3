//! Helpers shared by the test binaries: raw-socket HTTP servers, the local signer's identity.
#![allow(dead_code)] // each test binary uses a different subset

use tokio::io::AsyncReadExt;

/// Reads one request head from `socket` (after what `data` already holds), returns it and
/// leaves in `data` whatever followed it; `None` when the connection ends first.
pub async fn read_head(socket: &mut tokio::net::TcpStream, data: &mut Vec<u8>) -> Option<String> {
    let mut buf = vec![0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    };
    let head: Vec<u8> = data.drain(..head_end).collect();
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// The local signer's identity (address and its signature over it): BYOC tokens need one.
pub async fn signer_identity(
    http: &livepeer_gateway_actors::http::HttpClients,
    net: &gateway_testkit::network::LocalNetwork,
) -> gateway_core::signer::SignerIdentity {
    let url = format!("{}{}", net.signer_url(), gateway_core::signer::SIGN_ORCHESTRATOR_INFO_PATH);
    let resp: gateway_core::signer::SignOrchestratorInfoResponse =
        http.signer.post(url).json(&serde_json::json!({})).send().await.unwrap().json().await.unwrap();
    resp.identity().unwrap()
}
