//! Webhook signatures: PagerDuty's (with secret rotation), Grafana's (with and
//! without a timestamp), replayed timestamps refused, and secrets that never print.

use pretty_assertions::assert_eq;

use super::signature::{
    Secrets, SignatureError, Timestamped, sign_hex, verify_pagerduty, verify_timestamped,
};
use super::tests::sample;

#[test]
fn pagerduty_signatures_with_rotation() {
    let body = sample("pagerduty-triggered.json");
    let (old, new) = (b"old-secret".as_slice(), b"new-secret".as_slice());
    let sig = |s: &[u8]| format!("v1={}", sign_hex(s, &body));
    let both = Secrets::new([old, new]);
    // PagerDuty signs with each secret it holds while rotating.
    let header = format!("{},{}", sig(b"unknown"), sig(new));
    assert_eq!(verify_pagerduty(Some(&header), &body, &both), Ok(()));
    assert_eq!(verify_pagerduty(Some(&sig(old)), &body, &both), Ok(()));
    assert_eq!(
        verify_pagerduty(Some(&sig(old)), &body, &Secrets::new([new])),
        Err(SignatureError::Mismatch("X-PagerDuty-Signature".into()))
    );
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert!(matches!(
        verify_pagerduty(Some(&sig(new)), &tampered, &both),
        Err(SignatureError::Mismatch(_))
    ));
    assert!(matches!(
        verify_pagerduty(None, &body, &both),
        Err(SignatureError::Missing(_))
    ));
    assert!(matches!(
        verify_pagerduty(Some("v1=zz"), &body, &both),
        Err(SignatureError::Malformed { .. })
    ));
    assert!(matches!(
        verify_pagerduty(Some("v0=abcd"), &body, &both),
        Err(SignatureError::Malformed { .. })
    ));
    // Upper-case hex is hex too.
    let upper = format!("v1={}", sign_hex(new, &body).to_uppercase());
    assert_eq!(verify_pagerduty(Some(&upper), &body, &both), Ok(()));
}

fn grafana<'a>(sig: Option<&'a str>, ts: Option<Option<&'a str>>, now: i64) -> Timestamped<'a> {
    Timestamped {
        signature: ("X-Grafana-Alerting-Signature", sig),
        timestamp: ts.map(|t| ("X-Grafana-Alerting-Timestamp", t)),
        now,
        window_seconds: 300,
    }
}

#[test]
fn grafana_signature_without_and_with_a_timestamp() {
    let body = sample("grafana.json");
    let secrets = Secrets::new(["s3cret"]);
    let plain = sign_hex(b"s3cret", &body);
    assert_eq!(
        verify_timestamped(grafana(Some(&plain), None, 0), &body, &secrets),
        Ok(())
    );
    let signed_at = "1764072000";
    let mut msg = format!("{signed_at}:").into_bytes();
    msg.extend_from_slice(&body);
    let with_ts = sign_hex(b"s3cret", &msg);
    let now = 1_764_072_000 + 10;
    assert_eq!(
        verify_timestamped(
            grafana(Some(&with_ts), Some(Some(signed_at)), now),
            &body,
            &secrets
        ),
        Ok(())
    );
    // The body's signature alone does not pass when a timestamp is expected.
    assert!(matches!(
        verify_timestamped(
            grafana(Some(&plain), Some(Some(signed_at)), now),
            &body,
            &secrets
        ),
        Err(SignatureError::Mismatch(_))
    ));
    assert!(matches!(
        verify_timestamped(grafana(Some(&with_ts), Some(None), now), &body, &secrets),
        Err(SignatureError::Missing(h)) if h == "X-Grafana-Alerting-Timestamp"
    ));
}

#[test]
fn replayed_timestamps_are_refused() {
    let body = sample("generic.json");
    let secrets = Secrets::new(["k1", "k2"]);
    let signed_at = 1_764_072_000_i64;
    let mut msg = format!("{signed_at}:").into_bytes();
    msg.extend_from_slice(&body);
    let sig = format!("sha256={}", sign_hex(b"k2", &msg));
    let ts = signed_at.to_string();
    let req = |now| Timestamped {
        signature: ("X-Playbook-Signature", Some(sig.as_str())),
        timestamp: Some(("X-Playbook-Timestamp", Some(ts.as_str()))),
        now,
        window_seconds: 300,
    };
    assert_eq!(
        verify_timestamped(req(signed_at + 299), &body, &secrets),
        Ok(())
    );
    assert_eq!(
        verify_timestamped(req(signed_at + 301), &body, &secrets),
        Err(SignatureError::Stale {
            header: "X-Playbook-Timestamp".into(),
            age: 301,
            window: 300
        })
    );
    // From the future (a skewed clock, or a forged timestamp) too.
    assert!(matches!(
        verify_timestamped(req(signed_at - 301), &body, &secrets),
        Err(SignatureError::Stale { .. })
    ));
    // A new timestamp on an old signature does not verify.
    let later = (signed_at + 1000).to_string();
    let moved = Timestamped {
        timestamp: Some(("X-Playbook-Timestamp", Some(later.as_str()))),
        ..req(signed_at + 1000)
    };
    assert!(matches!(
        verify_timestamped(moved, &body, &secrets),
        Err(SignatureError::Mismatch(_))
    ));
}

#[test]
fn secrets_never_print() {
    let s = Secrets::new(["hunter2"]);
    assert_eq!(format!("{s:?}"), "Secrets(1 keys)");
    let e = verify_pagerduty(Some("v1=00"), b"x", &s).expect_err("mismatch");
    assert!(!e.to_string().contains("hunter2"));
}
