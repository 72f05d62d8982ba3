//! go-livepeer's own test vectors (pm/ticket_test.go, pm/recipient_test.go) and a few computed
//! with an independent reimplementation of the same layouts.

use num_traits::Signed;

use super::*;

fn h32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn dec(s: &str) -> BigUint {
    s.parse().unwrap()
}

/// A ticket with every field zero (go's zero `pm.Ticket` with zero big ints).
fn zero_ticket() -> Ticket {
    Ticket {
        recipient: [0; 20],
        sender: [0; 20],
        face_value: vec![],
        win_prob: vec![],
        sender_nonce: 0,
        recipient_rand_hash: [0; 32],
        creation_round: 0,
        creation_round_block_hash: [0; 32],
    }
}

#[test]
fn go_test_hash_vectors() {
    // pm/ticket_test.go TestHash, in order.
    let rand_hash = h32("41b1a0649752af1b28b3dc29a1556eee781e4a4c3a1f7f53f90fa834de098c4d");
    let cases = [
        (
            Ticket { sender_nonce: u32::MAX, ..zero_ticket() },
            "e1393fc7f6de093780674022f96cb8e3872235167d037c04d554e58c0e63d280",
        ),
        (
            Ticket { sender_nonce: 1, ..zero_ticket() },
            "ce0918ba94518293e9712effbe5fca4f1f431089833a5b8c257cb1e024595f68",
        ),
        (
            Ticket { face_value: vec![1], win_prob: be_bytes(500), ..zero_ticket() },
            "87ef13f2d37e4d5352a01d3c77b8179d80e0887f1953bfabfd0bfd7b0f689ddd",
        ),
        (
            Ticket { face_value: be_bytes(500), win_prob: vec![1], ..zero_ticket() },
            "aa4b35071043587992ac8b9dd1b2cf1d8311130e6458cf0b2342484e21af5f5b",
        ),
        (
            Ticket {
                recipient: fixed_bytes(&hex::decode("73AEd7b5dEb30222fa896f399d46cC99c7BEe57F").unwrap()),
                ..zero_ticket()
            },
            "81e353ae39046e2b77b9f996abbaeed527fda559b61ef90f299c4499dd508ccc",
        ),
        (
            Ticket { recipient_rand_hash: rand_hash, ..zero_ticket() },
            "be5eaf9a49a39540b9bb02f1a21904f61324a29819e2c032824bfaa10c100b17",
        ),
        (
            Ticket { creation_round: 10, creation_round_block_hash: rand_hash, ..zero_ticket() },
            "e502907c16036ab3d11b78c5a2e93c20f3d6415c67f91de4ed01348182b3b2e2",
        ),
    ];
    for (i, (ticket, expected)) in cases.iter().enumerate() {
        assert_eq!(hex::encode(ticket.hash()), *expected, "TestHash vector {}", i + 1);
    }
    assert_eq!(cases[0].0.flatten().len(), 168, "no aux data for round 0 and a zero hash");
    assert_eq!(cases[6].0.flatten().len(), 232);
}

#[test]
fn go_test_aux_data_vectors() {
    // pm/ticket_test.go TestAuxData.
    let block_hash = h32("7624778dedc75f8b322b9fa1632a610d40b85e106c7d9bf0e743a9ce291b9c6f");
    let hex_of = |round, hash: &[u8; 32]| hex::encode(aux_data(round, hash));
    let round5 = format!("{:064x}", 5);
    let zero = "0".repeat(64);
    assert_eq!(hex_of(0, &block_hash), format!("{zero}{}", hex::encode(block_hash)));
    assert_eq!(hex_of(5, &[0; 32]), format!("{round5}{zero}"));
    assert_eq!(aux_data(0, &[0; 32]), Vec::<u8>::new());
    assert_eq!(hex_of(5, &block_hash), format!("{round5}{}", hex::encode(block_hash)));
    // Absent ("nil") expiration params read as zero; a short block hash is left-padded.
    assert_eq!(aux_data_of(None), Vec::<u8>::new());
    let nil_hash = TicketExpirationParams { creation_round: 5, creation_round_block_hash: vec![] };
    assert_eq!(hex::encode(aux_data_of(Some(&nil_hash))), format!("{round5}{zero}"));
}

#[test]
fn go_test_ev_vectors() {
    // pm/ticket_test.go TestEV: EV = faceValue × winProb / (2^256 − 1).
    let max = max_win_prob();
    let half = biguint_bytes(&(&max / 2u32));
    let floor = |r: Rat| r.floor().to_integer().to_string();
    assert_eq!(floor(ticket_ev(&be_bytes(1000), &half)), "499", "just under 500: (2^256−2)/2 over 2^256−1");
    assert_eq!(ticket_ev(&be_bytes(1000), &half).round().to_integer().to_string(), "500");
    assert!(ticket_ev(&be_bytes(1000), &[]).is_zero());
    assert_eq!(ticket_ev(&be_bytes(1000), &biguint_bytes(&max)), Rat::from_integer(1000.into()));
    assert!(ticket_ev(&[], &be_bytes(999)).is_zero());
}

#[test]
fn go_recipient_win_prob_vectors() {
    // pm/recipient_test.go TestTicketParams: EV 5, redeemGas 10000, txCostMultiplier 100.
    let ev = BigUint::from(5u32);
    let cases = [
        // gas price 100 → faceValue 10000 × 100 × 100
        ("100000000", "5789604461865809771178549250434395392663499233282028201972879200395660"),
        // gas price 777
        ("777000000", "745122839364969082519761808292714979750772102095499125093034646125570"),
        // maxFloat 10001 caps the face value
        ("10001", "57890255593098787833002192285115442382396752657554526567072084795477017120"),
    ];
    for (face, win) in cases {
        let face = dec(face);
        assert_eq!(win_prob_for(&face, &ev), dec(win), "faceValue {face}");
        // The resulting EV is within 1 wei of the target.
        let got = ticket_ev(&face.to_bytes_be(), &dec(win).to_bytes_be());
        assert!((got - Rat::from_integer(5.into())).abs() < Rat::from_integer(1.into()));
    }
    assert_eq!(win_prob_for(&ev, &ev), max_win_prob(), "faceValue = EV: always wins");
    assert!(win_prob_for(&BigUint::zero(), &ev).is_zero());
    // An exact division takes no +1.
    assert_eq!(win_prob_for(&max_win_prob(), &ev), ev);
}

#[test]
fn realistic_arbitrum_params() {
    // EV 8 gwei, faceValue 1.2e6 gas × 0.01 gwei × 100 (the research notes' worked example).
    let face = BigUint::from(1_200_000_000_000_000u64);
    let win = win_prob_for(&face, &BigUint::from(8_000_000_000u64));
    assert_eq!(win, dec("771947261582107969490473233391252719021799897770937093596383896000000000"));
    let ev = rat_to_f64(&ticket_ev(&face.to_bytes_be(), &win.to_bytes_be()));
    assert!((ev - 8e9).abs() < 1.0, "{ev}");
}

#[test]
fn computed_ticket_and_recipient_rand_vectors() {
    // Computed with an independent Python implementation of the same layouts.
    let face = be_bytes(1_200_000_000_000_000);
    let win = biguint_bytes(&dec("771947261582107969490473233391252719021799897770937093596383896000000000"));
    let rand_hash = keccak256(&left_pad32(&be_bytes(123_456_789)));
    assert_eq!(hex::encode(rand_hash), "f395757e0d74803aae4e8adb875451d99622e911b61c64e044e0bd16a16f18cd");
    let expiration =
        TicketExpirationParams { creation_round: 4000, creation_round_block_hash: vec![0xab; 32] };
    let params = TicketParams {
        recipient: vec![0x11; 20],
        face_value: face.clone(),
        win_prob: win.clone(),
        recipient_rand_hash: rand_hash.to_vec(),
        seed: vec![1, 2, 3, 4, 5],
        expiration_block: be_bytes(100_040),
        expiration_params: None,
    };
    let ticket = Ticket::new(&params, Some(&expiration), &[0x22; 20], 1);
    assert_eq!(ticket.flatten().len(), 232);
    assert_eq!(
        hex::encode(ticket.hash()),
        "1b9bc442478ea6b7cca53aa6ac6b1a30646a4a0fe0eb9fef2b7cbc6f9f4458f3"
    );
    assert_eq!(
        hex::encode(ticket.signature_digest()),
        "de2f560dd86d62c3d0e32eaeb669c68de7ab12e7b0901813cc9aefaba005fc75"
    );

    let mut secret = [0u8; 32];
    secret[0] = 3;
    let price = Rat::from_integer(1000.into());
    let rand = recipient_rand(&secret, &params, &[0x22; 20], &price, Some(&expiration));
    assert_eq!(hex::encode(rand), "99d12bb1f26d9d437545ee0ba032329d7f8c6545366c407c0f03accb28b61ee6");
    assert_eq!(
        hex::encode(recipient_rand_hash(&rand)),
        "49609b05e4601519b572a88fa70e0ce82e31c24cd824d77cae0453b5b4692969"
    );
    // Leading zeros in the wire bytes change nothing (go reads them as big integers).
    let padded = TicketParams {
        seed: [vec![0, 0], params.seed.clone()].concat(),
        face_value: left_pad32(&face),
        ..params.clone()
    };
    assert_eq!(recipient_rand(&secret, &padded, &[0x22; 20], &price, Some(&expiration)), rand);
    // The same price written as 2000/2 is the same rational.
    let same_price = price_rat(&PriceInfo { price_per_unit: 2000, pixels_per_unit: 2, ..Default::default() });
    assert_eq!(same_price, Some(price.clone()));
    // Everything bound in changes the rand.
    let other = |p: &TicketParams, s: &[u8; 20], pr: &Rat, e: Option<&TicketExpirationParams>| {
        recipient_rand(&secret, p, s, pr, e)
    };
    assert_ne!(other(&params, &[0x23; 20], &price, Some(&expiration)), rand);
    assert_ne!(other(&params, &[0x22; 20], &Rat::from_integer(999.into()), Some(&expiration)), rand);
    assert_ne!(other(&params, &[0x22; 20], &price, None), rand);
}

#[test]
fn signatures_cover_the_ticket_hash() {
    let key = EthKey::random();
    let params = TicketParams {
        recipient: vec![1; 20],
        face_value: be_bytes(1000),
        win_prob: be_bytes(7),
        recipient_rand_hash: vec![9; 32],
        ..Default::default()
    };
    let ticket = Ticket::new(&params, None, &key.address(), 3);
    let sig = ticket.sign(&key);
    assert!(matches!(sig[64], 27 | 28));
    assert!(ticket.verify(&sig));
    assert_eq!(keys::recover_signer(&ticket.flatten(), &sig), Some(key.address()));
    assert!(!Ticket { sender_nonce: 4, ..ticket.clone() }.verify(&sig));
    assert!(!Ticket { sender: [7; 20], ..ticket }.verify(&sig));
}

#[test]
fn rat_strings_round_trip_like_go() {
    let r = |n: i64, d: i64| Rat::new(n.into(), d.into());
    assert_eq!(rat_string(&r(500, 1)), "500");
    assert_eq!(rat_string(&r(10, 4)), "5/2");
    assert_eq!(rat_string(&r(-3, 6)), "-1/2");
    assert_eq!(rat_string(&Rat::zero()), "0");
    for s in ["500", "5/2", "-1/2", "0"] {
        assert_eq!(rat_string(&parse_rat(s).unwrap()), s);
    }
    assert_eq!(parse_rat("1.25"), Some(r(5, 4)));
    assert_eq!(parse_rat("-0.5"), Some(r(-1, 2)));
    assert_eq!(parse_rat("4/-8"), Some(r(-1, 2)));
    for bad in ["", "x", "1/0", "1.2.3", "1/2/3", "."] {
        assert_eq!(parse_rat(bad), None, "{bad:?}");
    }
}

#[test]
fn byte_helpers() {
    assert_eq!(be_bytes(0), Vec::<u8>::new(), "go's big.Int.Bytes() of zero is empty");
    assert_eq!(be_bytes(0x0102), vec![1, 2]);
    assert_eq!(from_be_bytes(&[1, 2]), 0x0102);
    assert_eq!(from_be_bytes(&[0; 32]), 0);
    assert_eq!(from_be_bytes(&[1; 32]), u128::MAX);
    assert_eq!(left_pad32(&[1]).len(), 32);
    assert_eq!(left_pad32(&[1; 33]).len(), 33, "LeftPadBytes never truncates");
    assert_eq!(fixed_bytes::<4>(&[1, 2]), [0, 0, 1, 2]);
    assert_eq!(fixed_bytes::<2>(&[1, 2, 3]), [2, 3]);
    assert_eq!(minimal_be(&[0, 0, 5, 0]), &[5, 0]);
}

#[test]
fn simulated_chain() {
    let now = 1_700_000_000;
    let a = expiration_params_at(now);
    assert_eq!(a.creation_round as u64, block_at(now) / BLOCKS_PER_ROUND);
    assert_eq!(a.creation_round_block_hash.len(), 32);
    // One round is 100 blocks: the params are stable within it.
    let round_start = (a.creation_round as u64 * BLOCKS_PER_ROUND * BLOCK_TIME_SECS) as i64;
    assert_eq!(expiration_params_at(round_start), a);
    assert_ne!(expiration_params_at(round_start - 1), a);
}
