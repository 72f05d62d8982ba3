//! go-livepeer's pm rules as the signer applies them: tickets signed over go's ticket hash,
//! nonces per PM session, exact ticket counts and a `RatString` balance, the 100-ticket limit
//! with realistic parameters, and the sender-side ticket-params checks.

use super::*;

#[test]
fn verify_payment_rejects_foreign_and_malformed_tickets() {
    // Build a payment the way the signer does, then break it.
    let key = EthKey::random();
    let mut params = orchestrator_info(LV2V_PRICE, 1).ticket_params.unwrap();
    let expiration = params.expiration_params.take();
    let ticket = |k: &EthKey, nonce: u32| gateway_core::lp_rpc::TicketSenderParams {
        sender_nonce: nonce,
        sig: Ticket::new(&params, expiration.as_ref(), &key.address(), nonce).sign(k).to_vec(),
    };
    let good = Payment {
        ticket_params: Some(params.clone()),
        sender: key.address().to_vec(),
        expiration_params: expiration.clone(),
        ticket_sender_params: vec![ticket(&key, 1), ticket(&key, 2)],
        ..Default::default()
    };
    let v = verify_payment(&good).unwrap();
    assert_eq!((v.ticket_count, v.nonces.clone()), (2, vec![1, 2]));
    assert!(close(v.total_ev_wei(), 2.0 * TICKET_EV_WEI as f64, 1e-9));

    let mut forged = good.clone();
    forged.ticket_sender_params[1] = ticket(&EthKey::random(), 2);
    assert_eq!(verify_payment(&forged), Err(PaymentRejection::BadTicketSignature { index: 1, nonce: 2 }));
    let mut renumbered = good.clone();
    renumbered.ticket_sender_params[0].sender_nonce = 9;
    assert!(matches!(
        verify_payment(&renumbered),
        Err(PaymentRejection::BadTicketSignature { index: 0, .. })
    ));
    // The expiration params are part of the hash.
    let mut other_round = good.clone();
    other_round.expiration_params.as_mut().unwrap().creation_round += 1;
    assert!(matches!(verify_payment(&other_round), Err(PaymentRejection::BadTicketSignature { .. })));
    let mut repeated = good.clone();
    repeated.ticket_sender_params[1] = ticket(&key, 1);
    assert_eq!(verify_payment(&repeated), Err(PaymentRejection::DuplicateNonce(1)));
    let mut short_sender = good.clone();
    short_sender.sender.pop();
    assert_eq!(verify_payment(&short_sender), Err(PaymentRejection::BadSender(19)));
    let mut orphan = good.clone();
    orphan.ticket_params = None;
    assert_eq!(verify_payment(&orphan), Err(PaymentRejection::MissingTicketParams(2)));
    let empty = Payment { sender: key.address().to_vec(), ..Default::default() };
    assert_eq!(verify_payment(&empty).unwrap().ticket_count, 0);
}

#[tokio::test]
async fn payments_are_go_tickets_signed_over_the_ticket_hash() {
    let net = start(SignerConfig::default()).await;
    let info = orchestrator_info(LV2V_PRICE, 1);
    let a = net.pay(&lv2v_request(&info)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let payment = payment_of(&a);
    let params = info.ticket_params.clone().unwrap();
    // What a go orchestrator reads: the signer's address, the quoted price as it was given, the
    // orchestrator's expiration params beside (not inside) the ticket params.
    assert_eq!(payment.sender, net.signer.address().to_vec());
    assert_eq!(payment.expected_price, info.price_info);
    assert_eq!(payment.expiration_params, params.expiration_params);
    let sent = payment.ticket_params.clone().unwrap();
    assert_eq!(sent.expiration_params, None);
    assert_eq!(
        (&sent.recipient, &sent.face_value, &sent.win_prob, &sent.recipient_rand_hash, &sent.seed),
        (&params.recipient, &params.face_value, &params.win_prob, &params.recipient_rand_hash, &params.seed)
    );
    assert_eq!(sent.expiration_block, params.expiration_block);
    for t in &payment.ticket_sender_params {
        let ticket = Ticket::new(&sent, payment.expiration_params.as_ref(), &payment.sender, t.sender_nonce);
        // personal_sign over the 32-byte ticket hash, v = 27/28 (low s is checked on recovery).
        assert_eq!(t.sig.len(), 65);
        assert!(matches!(t.sig[64], 27 | 28));
        let digest = gateway_core::eth::signature_digest(&ticket.flatten());
        assert_eq!(digest, ticket.signature_digest());
        assert!(ticket.verify(&t.sig), "nonce {}", t.sender_nonce);
        assert_eq!(recover_signer(&ticket.flatten(), &t.sig), Some(net.signer.address()));
    }
}

#[tokio::test]
async fn nonces_continue_only_on_the_same_pm_session() {
    let net = start(SignerConfig::default()).await;
    // 9 gwei per call against 8 gwei tickets: every call needs at least one ticket.
    let info = orchestrator_info(9_000_000_000, 1);
    let fixed = |info: &OrchestratorInfo| json!({"orchestrator": to_base64(info), "type": "fixed"});
    let nonces = |a: &Answer| verify_payment(&payment_of(a)).unwrap().nonces;

    let first = net.pay(&fixed(&info)).await;
    assert_eq!(nonces(&first), [1, 2], "a new session starts at nonce 1");
    let s1 = state_of(&first);
    let hash = info.ticket_params.as_ref().unwrap().recipient_rand_hash.clone();
    assert_eq!(s1.pm_session_id, format!("0x{}", hex::encode(&hash)), "PMSessionID is the rand hash");
    assert_eq!(s1.sender_nonce, 2);

    // Same ticket params with the state: the nonce continues.
    let mut next = fixed(&info);
    next["state"] = first.body["state"].clone();
    next["ManifestID"] = json!("m");
    let second = net.pay(&next).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(nonces(&second), [3], "numbered on");
    assert_eq!(state_of(&second).sender_nonce, 3);

    // New ticket params (a refreshed orchestrator info): the state's nonce belongs to other
    // params, so numbering restarts.
    let mut refreshed = info.clone();
    refreshed.ticket_params.as_mut().unwrap().recipient_rand_hash = keccak256(b"other rand").to_vec();
    let mut moved = fixed(&refreshed);
    moved["state"] = second.body["state"].clone();
    moved["ManifestID"] = json!("m");
    let restarted = net.pay(&moved).await;
    assert_eq!(restarted.status, 200, "{}", restarted.body);
    assert_eq!(nonces(&restarted), [1]);
    assert_eq!(state_of(&restarted).pm_session_id, format!("0x{}", hex::encode(keccak256(b"other rand"))));

    // No state, old params: go-livepeer's signer keeps no memory, so nonce 1 again (an
    // orchestrator that saw it refuses it; a client must fetch fresh params first).
    let again = net.pay(&fixed(&info)).await;
    assert_eq!(nonces(&again), [1, 2]);
}

#[tokio::test]
async fn balance_is_a_rat_string() {
    let net = start(SignerConfig::default()).await;
    // EV exactly 100 wei: faceValue 300 at a win probability of (2^256 − 1) / 3.
    let mut info = orchestrator_info(250, 1);
    let params = info.ticket_params.as_mut().unwrap();
    params.face_value = be_bytes(300);
    params.win_prob = biguint_bytes(&(max_win_prob() / 3u32));
    assert_eq!(ticket_ev(&params.face_value, &params.win_prob), Rat::from_integer(100.into()));

    // fixed: fee 250 → 3 tickets → 300 − 250 = 50.
    let a = net.pay(&json!({"orchestrator": to_base64(&info), "type": "fixed"})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(verify_payment(&payment_of(&a)).unwrap().ticket_count, 3);
    assert_eq!(state_of(&a).balance, "50");

    // 1000/3 wei per unit: fee 1000/3 → 4 tickets → 400 − 1000/3 = 200/3.
    info.price_info = Some(PriceInfo { price_per_unit: 1000, pixels_per_unit: 3, ..Default::default() });
    let b = net.pay(&json!({"orchestrator": to_base64(&info), "type": "fixed"})).await;
    assert_eq!(verify_payment(&payment_of(&b)).unwrap().ticket_count, 4);
    assert_eq!(state_of(&b).balance, "200/3");
    assert_eq!(state_of(&b).balance_rat(), Some(Rat::new(200.into(), 3.into())));

    // The next call starts from that exact credit: fee 1000/3 − 200/3 = 800/3 → 3 tickets →
    // 200/3 + 300 − 1000/3 = 100/3.
    let mut c_req = json!({"orchestrator": to_base64(&info), "type": "fixed", "ManifestID": "m"});
    c_req["state"] = b.body["state"].clone();
    let c = net.pay(&c_req).await;
    assert_eq!(verify_payment(&payment_of(&c)).unwrap().ticket_count, 3);
    assert_eq!(state_of(&c).balance, rat_string(&Rat::new(100.into(), 3.into())));

    // Realistic params: the balance is a fraction over 2^256 − 1 (reduced).
    let real = net.pay(&lv2v_request(&orchestrator_info(LV2V_PRICE, 1))).await;
    let balance = state_of(&real).balance;
    let (num, den) = balance.split_once('/').expect("a fraction");
    assert!(num.parse::<BigUint>().is_ok() && den.parse::<BigUint>().is_ok(), "{balance}");
}

#[tokio::test]
async fn manifest_id_may_change_between_calls() {
    let net = start(SignerConfig::default()).await;
    let info = orchestrator_info(LV2V_PRICE, 1);
    let mut req = lv2v_request(&info);
    req["ManifestID"] = json!("start-manifest");
    let first = net.pay(&req).await;
    assert_eq!(seg_of(&first).manifest_id, b"start-manifest");
    // The orchestrator renamed the session after the start call: go-livepeer's signer does not
    // remember manifest ids, so a different one is fine.
    net.signer.advance_clock(Duration::from_secs(60));
    req["state"] = first.body["state"].clone();
    req["ManifestID"] = json!("orchestrator-manifest");
    let second = net.pay(&req).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(seg_of(&second).manifest_id, b"orchestrator-manifest");
}

#[tokio::test]
async fn ticket_limit_with_realistic_params() {
    let net = start(SignerConfig::default()).await;
    let caps = build_capabilities(&parse_capability_queries(["byoc/text-reversal"]).unwrap());
    let byoc = |price: i64, preload: u32| {
        json!({"orchestrator": to_base64(&orchestrator_info(price, 1)), "type": "byoc",
               "preloadSeconds": preload, "capabilities": to_base64(&caps)})
    };
    let tickets = |a: &Answer| verify_payment(&payment_of(a)).unwrap().ticket_count;

    // Five minutes of BYOC at 100 wei/s is 30 000 wei: one 8 gwei ticket.
    let cheap = net.pay(&byoc(100, 300)).await;
    assert_eq!(cheap.status, 200, "{}", cheap.body);
    assert_eq!(tickets(&cheap), 1);
    // A minute at 1.3e10 wei/s is 7.8e11 wei: 98 tickets of 8e9 (just under 100).
    let dear = net.pay(&byoc(13_000_000_000, 60)).await;
    assert_eq!(tickets(&dear), (60.0 * 1.3e10 / ev_of(&orchestrator_info(1, 1))).ceil() as usize);
    assert_eq!(tickets(&dear), 98);
    // 2e10 wei/s: 150 tickets, over the limit.
    let over = net.pay(&byoc(20_000_000_000, 60)).await;
    assert_eq!((over.status, over.error_message()), (400, "numTickets 150 exceeds maximum of 100"));
}

#[tokio::test]
async fn ticket_params_a_sender_refuses() {
    let net = start(SignerConfig::default()).await;
    let prefix = "remote signer could not check whether to refresh session";

    let mut no_block = orchestrator_info(LV2V_PRICE, 1);
    no_block.ticket_params.as_mut().unwrap().expiration_block = Vec::new();
    let a = net.pay(&lv2v_request(&no_block)).await;
    assert_eq!(
        (a.status, a.error_message()),
        (400, format!("{prefix}: ticketParams expiration block is 0").as_str())
    );

    // A ticket that always wins is worth its face value: go's sender refuses it.
    let mut always = orchestrator_info(LV2V_PRICE, 1);
    always.ticket_params.as_mut().unwrap().win_prob = biguint_bytes(&max_win_prob());
    let b = net.pay(&lv2v_request(&always)).await;
    assert_eq!(b.status, 400);
    assert_eq!(b.error_message(), format!("{prefix}: ticket faceValue too low faceValue={FACE_VALUE_WEI}"));

    // One block left is "expired" for a sender (paramsExpiryBuffer): refresh.
    let mut last_block = orchestrator_info(LV2V_PRICE, 1);
    last_block.ticket_params.as_mut().unwrap().expiration_block =
        be_bytes(u128::from(block_at(unix_now()) + 1));
    assert_eq!(net.pay(&lv2v_request(&last_block)).await.status, 480);
}
