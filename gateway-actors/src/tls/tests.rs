//! Unit tests of the pin rules, the pin file and CA roots.
use super::*;
use gateway_core::lp_rpc::OrchestratorInfo;
use gateway_core::lp_rpc::TicketParams;

const A: [u8; 20] = [0xaa; 20];
const B: [u8; 20] = [0xbb; 20];
const R: [u8; 20] = [0xcc; 20];

fn info(address: [u8; 20], recipient: Option<[u8; 20]>) -> OrchestratorInfo {
    OrchestratorInfo {
        address: address.to_vec(),
        ticket_params: recipient.map(|r| TicketParams { recipient: r.to_vec(), ..Default::default() }),
        ..Default::default()
    }
}

#[test]
fn strict_pins_then_refuses_a_change() {
    let pins = PinStore::in_memory();
    let strict = HandshakeRule::Strict;
    assert!(pins.check_handshake("o1", "aaaa", strict).is_ok());
    assert!(pins.check_handshake("o1", "aaaa", strict).is_ok());
    let err = pins.check_handshake("o1", "bbbb", strict).unwrap_err();
    assert!(matches!(err, TrustError::CertificateChanged { .. }), "{err}");
    assert!(pins.check_handshake("o2", "bbbb", strict).is_ok());
    pins.forget("o1");
    assert!(pins.check_handshake("o1", "bbbb", strict).is_ok());
}

#[test]
fn pinned_refuses_unconfirmed_data_connections_and_lets_probes_through() {
    let pins = PinStore::in_memory();
    pins.check_handshake("o", "f1", HandshakeRule::Unconfirmed).unwrap();
    let e = pins.check_handshake("o", "f2", HandshakeRule::Unconfirmed).unwrap_err();
    assert!(matches!(e, TrustError::CertificateUnconfirmed { .. }), "{e}");
    pins.check_handshake("o", "f2", HandshakeRule::Provisional).unwrap();
    assert_eq!(pins.get("o").as_deref(), Some("f1"), "a provisional handshake pins nothing");
}

#[test]
fn repin_needs_the_pinned_address_and_recipient() {
    let pins = PinStore::in_memory();
    assert_eq!(pins.observe("o", "f1", &info(A, Some(A)), true), Ok(Observation::FirstUse));
    assert_eq!(pins.observe("o", "f1", &info(A, Some(A)), true), Ok(Observation::Known));
    // Same certificate, other identity: refused in every mode.
    let e = pins.observe("o", "f1", &info(B, Some(A)), true).unwrap_err();
    assert!(matches!(e, TrustError::IdentityChanged { certificate_changed: false, .. }), "{e}");
    let e = pins.observe("o", "f1", &info(A, Some(B)), true).unwrap_err();
    assert!(matches!(e, TrustError::RecipientChanged { .. }), "{e}");
    // New certificate: strict refuses; pinned needs the same address and recipient.
    let e = pins.observe("o", "f2", &info(A, Some(A)), false).unwrap_err();
    assert!(matches!(e, TrustError::CertificateChanged { .. }), "{e}");
    let e = pins.observe("o", "f2", &info(B, Some(B)), true).unwrap_err();
    assert!(matches!(e, TrustError::IdentityChanged { certificate_changed: true, .. }), "{e}");
    let e = pins.observe("o", "f2", &info(A, Some(B)), true).unwrap_err();
    assert!(matches!(e, TrustError::RecipientChanged { .. }), "{e}");
    assert_eq!(pins.get("o").as_deref(), Some("f1"), "refusals change nothing");

    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    pins.on_repin(move |r| sink.lock().unwrap().push(r.clone()));
    let Ok(Observation::Repinned(r)) = pins.observe("o", "f2", &info(A, Some(A)), true) else {
        panic!("not re-pinned")
    };
    assert_eq!((r.previous.as_str(), r.fingerprint.as_str(), r.recipient), ("f1", "f2", A));
    assert!(r.to_string().contains("not a proof"), "{r}");
    assert_eq!(pins.get("o").as_deref(), Some("f2"));
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(pins.observe("o", "f2", &info(A, None), true), Ok(Observation::Known));
    assert_eq!(seen.lock().unwrap().len(), 1, "warned once");
}

#[test]
fn repin_with_a_separate_recipient_and_without_identity() {
    // go's -ethOrchAddr: the address signs, tickets pay another recipient.
    let pins = PinStore::in_memory();
    pins.observe("o", "f1", &info(A, Some(R)), true).unwrap();
    assert!(matches!(pins.observe("o", "f2", &info(A, Some(R)), true), Ok(Observation::Repinned(_))));
    // No ticket params in the answer: the address alone confirms, the recipient stays.
    assert!(matches!(pins.observe("o", "f3", &info(A, None), true), Ok(Observation::Repinned(_))));
    assert_eq!(pins.pin("o").unwrap().recipient, Some(R));

    // Offchain orchestrators send the zero address: nothing to confirm a change with.
    pins.observe("z", "f1", &info([0; 20], None), true).unwrap();
    let e = pins.observe("z", "f2", &info([0; 20], None), true).unwrap_err();
    assert!(matches!(e, TrustError::NoPinnedIdentity { .. }), "{e}");

    // Only a recipient pinned (a BYOC token): it must be named on the new certificate,
    // and an address alone does not confirm.
    pins.check_handshake("t", "f1", HandshakeRule::Unconfirmed).unwrap();
    pins.check_recipient("t", &R).unwrap();
    assert!(pins.check_recipient("t", &B).is_err());
    let e = pins.observe("t", "f2", &info(A, None), true).unwrap_err();
    assert!(matches!(e, TrustError::NoPinnedIdentity { .. }), "{e}");
    assert!(matches!(pins.observe("t", "f2", &info(A, Some(R)), true), Ok(Observation::Repinned(_))));
}

#[test]
fn a_repin_moves_other_names_of_the_same_certificate() {
    let pins = PinStore::in_memory();
    pins.observe("1.2.3.4:8935", "f1", &info(A, Some(A)), true).unwrap();
    pins.check_handshake("o.example:8935", "f1", HandshakeRule::Unconfirmed).unwrap();
    pins.observe("1.2.3.4:8935", "f2", &info(A, Some(A)), true).unwrap();
    assert_eq!(pins.get("o.example:8935").as_deref(), Some("f2"));
}

#[test]
fn persistent_pins_survive_reload_and_read_the_old_format() {
    let dir = std::env::temp_dir().join(format!("lpgw-pins-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pins.json");
    let _ = std::fs::remove_file(&path);
    let a = PinStore::persistent(&path).unwrap();
    a.observe("o", "f1", &info(A, Some(R)), true).unwrap();
    let b = PinStore::persistent(&path).unwrap();
    assert_eq!(b.pin("o"), Some(Pin { fingerprint: "f1".into(), address: Some(A), recipient: Some(R) }));
    assert!(b.check_handshake("o", "f2", HandshakeRule::Strict).is_err());

    std::fs::write(&path, br#"{"old:1": "f9"}"#).unwrap();
    let c = PinStore::persistent(&path).unwrap();
    assert_eq!(c.pin("old:1"), Some(Pin::new("f9")));
    std::fs::write(&path, b"not json").unwrap();
    assert!(PinStore::persistent(&path).is_err());
    std::fs::write(&path, br#"{"o:1": {"fingerprint": "f", "address": "0x12"}}"#).unwrap();
    assert!(PinStore::persistent(&path).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn trust_errors_are_found_through_io_and_rustls_wrappers() {
    let e = TrustError::CertificateUnconfirmed {
        origin: "o:1".into(),
        pinned: "a".into(),
        presented: "b".into(),
    };
    let io = std::io::Error::new(std::io::ErrorKind::InvalidData, refuse(e.clone()));
    assert_eq!(trust_error(&io), Some(&e));
    let plain = std::io::Error::other("nothing");
    assert_eq!(trust_error(&plain), None);
}

#[test]
fn ca_roots_parse_pem_and_refuse_empty_input() {
    assert!(matches!(CaRoots::none().with_pem(b"nothing"), Err(TrustConfigError::InvalidPem(_))));
    assert!(matches!(CaVerifier::new(CaRoots::none()), Err(TrustConfigError::Verifier(_))));
    assert_eq!(pin_key("[::1]", 8935), "::1:8935");
    assert_eq!(pin_key("O.Example", 1), "o.example:1");
}
