//! Unit tests of `remote`, kept beside it so the module stays readable.

use super::{parse_addr, Addr};

fn loopback(addr: &str) -> bool {
    matches!(
        parse_addr(addr, false),
        Ok(Addr::Http { loopback: true, .. })
    )
}

#[test]
fn loopback_hosts_are_told_apart_from_remote_ones() {
    for ok in [
        "http://127.0.0.1:8200",
        "http://localhost:1/x",
        "http://[::1]:8200",
        "http://127.9.9.9",
        "http://LOCALHOST",
    ] {
        assert!(loopback(ok), "{ok}");
    }
    for remote in [
        "http://10.0.0.1:8200",
        "http://vault.example:443",
        "http://[::2]:1",
        "http://127.0.0.1.evil.test:80",
    ] {
        assert!(parse_addr(remote, false).is_err(), "{remote}");
    }
}

// issue 13, finding 16
#[test]
fn userinfo_cannot_make_a_remote_host_look_like_loopback() {
    for trick in [
        "http://[::1]@192.0.2.2:8200",
        "http://127.0.0.1@192.0.2.2:8200",
        "http://localhost:x@192.0.2.2",
        "https://[::1]@192.0.2.2:8200",
        "http://user@127.0.0.1:8200",
    ] {
        assert!(parse_addr(trick, true).is_err(), "{trick}");
    }
    assert!(parse_addr("http://127.0.0.1:8200/?x=1", false).is_err());
    assert_eq!(
        parse_addr("unix:/run/vault.sock", false).unwrap(),
        Addr::Unix("/run/vault.sock".into())
    );
    assert!(parse_addr("unix:relative.sock", false).is_err());
}
