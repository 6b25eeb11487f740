//! Value-shape checks: whether a matched value is a credential or something shaped like one
//! (a documentation example, a placeholder, or, for the generic assignment rules, code).
//! Kept apart from the engine so the judgement of "is this a secret" lives in one place and
//! is tested on its own.

/// Whether `data[start..end]`, matched by a generic assignment rule (`password = ...`,
/// `api_key: ...`), is code or prose rather than a value: a path or call, a type, an
/// identifier, a reference, a timestamp, or a word that names the thing it stands for.
/// Provider rules need none of this (their formats are checked by their patterns); a
/// generic rule matches any assignment, and on real code most assignments to a variable
/// called `private_key` are calls and types (issue 18, noise on real code).
pub(crate) fn generic_value_is_code(data: &[u8], start: usize, end: usize) -> bool {
    let v = &data[start..end];
    let lower = v.to_ascii_lowercase();
    let contains = |m: &[u8]| lower.windows(m.len()).any(|w| w == m);
    // A call (`rsa.PrivateKey.load_pkcs1(...)`, `SafeString::new()`) or an index.
    if matches!(data.get(end), Some(b'(') | Some(b'[')) {
        return true;
    }
    // Rust and C++ paths (`password_hash::Error::Algorithm`), or the tail of a type
    // annotation the assignment pattern read as `name: value` (`password: ::std::String`).
    if contains(b"::") || v.first() == Some(&b':') || v.first() == Some(&b'&') {
        return true;
    }
    // A dotted path of identifiers: `self.password`, `base64.b64decode`,
    // `x25519.X25519PrivateKey`, `config.db.password`. Not a token in dotted parts whose
    // parts read as random (`<36 random>.<72 random>.<24 random>`, Eden AI's keys and
    // JWT-like tokens): a long part that changes character class at about every other byte
    // is no name.
    let segments: Vec<&[u8]> = v.split(|&b| b == b'.').collect();
    let random_part = |s: &&[u8]| s.len() >= 16 && class_changes(s) * 4 >= s.len();
    if segments.len() >= 2
        && segments.iter().all(|s| is_identifier(s))
        && !segments.iter().any(random_part)
    {
        return true;
    }
    // One identifier in snake_case or CamelCase (`generate_private_key`,
    // `PKCS7PrivateKeyTypes`): few changes of character class per byte, where a random
    // token changes class at about every other byte.
    if is_identifier(v) && class_changes(v) * 4 < v.len() {
        return true;
    }
    // References and records rather than values.
    const REFERENCE_PREFIXES: &[&[u8]] = &[b"arn:", b"http://", b"https://", b"file:", b"/"];
    if REFERENCE_PREFIXES.iter().any(|p| lower.starts_with(p)) {
        return true;
    }
    // An ISO 8601 date or timestamp (`"PasswordLastUsed": "2016-06-13T18:32:04Z"`).
    if v.len() >= 10
        && v[..4].iter().all(u8::is_ascii_digit)
        && v[4] == b'-'
        && v[5..7].iter().all(u8::is_ascii_digit)
        && v[7] == b'-'
    {
        return true;
    }
    // A value that names itself (`no-password-required`, `generatedwebdavpassword1`,
    // `dummy-secret`): someone's description of a password, not one.
    const SELF_NAMING: &[&[u8]] = &[b"password", b"passwd", b"secret", b"dummy", b"sample"];
    SELF_NAMING.iter().any(|m| contains(m))
}

/// Whether the name a value is assigned to (the word before `=`, `:` or the blank in front
/// of `data[start..]`) ends in a word for an identifier: `twilioApiKeySid`, `AUTH0_CLIENT_ID`,
/// `okta_domain`. A rule keyed by a provider's name alone would otherwise report the
/// account's id or hostname beside its key (issue 18: identifiers are not secrets).
pub(crate) fn named_as_identifier(data: &[u8], start: usize) -> bool {
    let head = &data[..start];
    let name_end = head
        .iter()
        .rposition(|b| {
            !matches!(
                b,
                b' ' | b'\t' | b'"' | b'\'' | b'`' | b'=' | b':' | b'>' | b']'
            )
        })
        .map_or(0, |i| i + 1);
    let name = &head[..name_end];
    let word_start = name
        .iter()
        .rposition(|b| !b.is_ascii_alphanumeric())
        .map_or(0, |i| i + 1);
    let word = name[word_start..].to_ascii_lowercase();
    const ID_WORDS: &[&[u8]] = &[
        b"sid",
        b"id",
        b"ids",
        b"name",
        b"user",
        b"username",
        b"url",
        b"uri",
        b"host",
        b"hostname",
        b"domain",
        b"email",
        b"region",
        b"account",
        b"endpoint",
        b"org",
    ];
    ID_WORDS.iter().any(|w| word.ends_with(w))
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_identifier(s: &[u8]) -> bool {
    s.first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        && s.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// Changes of character class (lower, upper, digit) between neighbours, not counting the
/// one inside a capitalised word (`Ke` in `Key`) nor across `_`.
fn class_changes(s: &[u8]) -> usize {
    let class = |b: u8| {
        if b.is_ascii_lowercase() {
            1
        } else if b.is_ascii_uppercase() {
            2
        } else if b.is_ascii_digit() {
            3
        } else {
            0
        }
    };
    s.windows(2)
        .filter(|w| {
            let (a, b) = (class(w[0]), class(w[1]));
            a != 0 && b != 0 && a != b && !(a == 2 && b == 1)
        })
        .count()
}

/// Values that are examples or references, not secrets.
pub(crate) fn is_placeholder(secret: &[u8]) -> bool {
    const MARKERS: &[&[u8]] = &[
        b"example",
        b"xxxx",
        b"****",
        b"...",
        "…".as_bytes(),
        b"<",
        b">",
        b"${",
        b"{{",
        b"your_",
        b"your-",
        b"placeholder",
        b"redacted",
        b"changeme",
        b"os.environ",
        b"process.env",
        b"getenv",
    ];
    let lower = secret.to_ascii_lowercase();
    if MARKERS
        .iter()
        .any(|m| lower.windows(m.len()).any(|w| w == *m))
    {
        return true;
    }
    // A body of one repeated character (`sk-aaaaaaaa`).
    let body = match lower.iter().rposition(|&b| b == b'_' || b == b'-') {
        Some(p) if p + 1 < lower.len() => &lower[p + 1..],
        _ => &lower[..],
    };
    body.len() >= 8 && body.iter().all(|&b| b == body[0])
}

/// Whether `value` counts, as a person typing an example does:
/// `123456`, `abcdef`, `9876543210` in a row, or, in a value of letters and digits mixed
/// (`a1b2c3d4e5f6`, `abc123def456ghi789`), in its letters read apart. Random values rarely
/// do: six in a row of a base62 key's characters, about 2 in 62^5 per position; a hex value
/// needs seven (its 16 characters make six likelier), and its letters (a-f only) are not
/// read apart; nor are those of a value over 64 characters (a PEM body), whose many
/// letters would count by chance.
pub(crate) fn counts(value: &[u8]) -> bool {
    let lower = value.to_ascii_lowercase();
    let run_of = |bytes: &mut dyn Iterator<Item = u8>, n: usize| -> bool {
        let (mut len, mut step, mut prev) = (1usize, 0i16, None::<u8>);
        for b in bytes {
            let d = prev.map_or(0, |p| i16::from(b) - i16::from(p));
            if b.is_ascii_alphanumeric() && (d == 1 || d == -1) {
                len = if d == step { len + 1 } else { 2 };
                step = d;
            } else {
                len = 1;
                step = 0;
            }
            if len >= n {
                return true;
            }
            prev = b.is_ascii_alphanumeric().then_some(b);
        }
        false
    };
    let hex = lower.iter().all(u8::is_ascii_hexdigit);
    if run_of(&mut lower.iter().copied(), if hex { 7 } else { 6 }) {
        return true;
    }
    !hex && lower.len() <= 64
        && run_of(
            &mut lower.iter().copied().filter(u8::is_ascii_alphabetic),
            6,
        )
}

/// Whether `token` is jwt.io's documentation example (any signature): its payload's
/// `sub` and `name` claims. Published in every JWT tutorial, it authenticates nothing.
pub(crate) fn is_documentation_jwt(token: &[u8]) -> bool {
    use base64::Engine as _;
    let Some(payload) = token.split(|&b| b == b'.').nth(1) else {
        return false;
    };
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let Ok(json) = engine.decode(payload) else {
        return false;
    };
    let Ok(serde_json::Value::Object(claims)) = serde_json::from_slice(&json) else {
        return false;
    };
    claims.get("sub").and_then(|v| v.as_str()) == Some("1234567890")
        && claims.get("name").and_then(|v| v.as_str()) == Some("John Doe")
}

/// Whether the password at `data[start..end]` of a `scheme://user:password@host` URL is a
/// placeholder credential on a local or documentation host. Both must hold: a real-looking
/// password on `localhost`, or a placeholder on a real host, is still reported.
pub(crate) fn is_placeholder_url_credential(data: &[u8], start: usize, end: usize) -> bool {
    const PLACEHOLDER_PASSWORDS: &[&str] = &[
        "pass",
        "password",
        "passwd",
        "pwd",
        "secret",
        "bar",
        "foo",
        "test",
        "changeme",
        "example",
        "pass123",
        "password123",
        "mypassword",
        "yourpassword",
        "p@ssw0rd",
        "p4ssw0rd",
        "admin",
        "root",
        "dbpass",
        "dbpassword",
    ];
    let password = data[start..end].to_ascii_lowercase();
    // The user: back from the `:` before the password to the `//` of the scheme.
    let user_end = start.saturating_sub(1);
    let user_start = data[..user_end]
        .iter()
        .rposition(|&b| b == b'/')
        .map_or(0, |p| p + 1);
    let user = data[user_start..user_end].to_ascii_lowercase();
    let placeholder = PLACEHOLDER_PASSWORDS
        .iter()
        .any(|p| password == p.as_bytes())
        || (!user.is_empty() && password == user);
    if data.get(end) != Some(&b'@') {
        return false;
    }
    let rest = &data[end + 1..];
    let host_len = rest
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b"-.[]".contains(&b)))
        .unwrap_or(rest.len());
    let host = String::from_utf8_lossy(&rest[..host_len]).to_ascii_lowercase();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    const LOCAL: &[&str] = &[
        "localhost",
        "127.0.0.1",
        "::1",
        "0.0.0.0",
        "host",
        "hostname",
    ];
    const DOC_DOMAINS: &[&str] = &["example.com", "example.org", "example.net"];
    const DOC_SUFFIXES: &[&str] = &[".localhost", ".example", ".test", ".invalid", ".local"];
    // A documentation domain (RFC 2606) holds no accounts: any password there is an
    // example (`ftp://rms:secret123@example.com` in the url crate's docs).
    if DOC_DOMAINS
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
        || host.ends_with(".example")
        || host.ends_with(".invalid")
        || host == "example"
    {
        return true;
    }
    placeholder
        && (LOCAL.contains(&host)
            || host.starts_with("127.")
            || DOC_SUFFIXES.iter().any(|s| host.ends_with(s)))
}

/// Whether the line holding `at` carries an inline `vault:allow` marker.
pub(crate) fn allowed_inline(data: &[u8], at: usize) -> bool {
    let ls = data[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let le = data[at..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(data.len(), |p| at + p);
    data[ls..le].windows(11).any(|w| w == b"vault:allow")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(line: &str, value: &str) -> bool {
        let start = line.find(value).unwrap();
        generic_value_is_code(line.as_bytes(), start, start + value.len())
    }

    // issue 18, item 1: the shapes seen on real code (CPython, site-packages, crates).
    #[test]
    fn calls_paths_types_and_identifiers_are_code() {
        assert!(code(
            "key = rsa.PrivateKey.load_pkcs1(x)",
            "rsa.PrivateKey.load_pkcs1"
        ));
        assert!(code("password = SafeString::new()", "SafeString::new"));
        assert!(code("password_hash::Error::Algorithm", ":Error::Algorithm"));
        assert!(code(
            "private_key: x25519.X25519PrivateKey",
            "x25519.X25519PrivateKey"
        ));
        assert!(code(
            "password = self.encrypted_data",
            "self.encrypted_data"
        ));
        assert!(code(
            "private_key = generate_private_key",
            "generate_private_key"
        ));
        assert!(code(
            "private_key: PKCS7PrivateKeyTypes",
            "PKCS7PrivateKeyTypes"
        ));
        assert!(code(
            "\"Password\": \"arn:aws:iam::aws:policy/Password\"",
            "arn:aws:iam::aws:policy/Password"
        ));
        assert!(code(
            "\"PasswordLastUsed\": \"2016-06-13T18:32:04Z\"",
            "2016-06-13T18:32:04Z"
        ));
        assert!(code(
            "password = \"no-password-required\"",
            "no-password-required"
        ));
    }

    // issue 18, breadth without placeholders: a counting value under a provider's name is
    // an example.
    #[test]
    fn counting_values_are_placeholders_and_random_ones_are_not() {
        for v in [
            "1234567890abcdef1234567890abcdef",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345",
            "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6",
            "abc123def456ghi789jkl012mno345pq",
            "zyxwvutsrqponmlkjihg",
            "9876543210fedcba",
        ] {
            assert!(counts(v.as_bytes()), "{v}");
        }
        for v in [
            "Zx7wLp2Vb8Nc4Rs6Yh1Ju5Kq",
            "FAKE0demo1Zx7wLp2Vb8Nc4Rs6Yh1Ju5",
            "3f9a0c7e5b21d4a8e6f0",
            "shwc7ighlfw9fcoul7ahojmf2sx2dabv",
        ] {
            assert!(!counts(v.as_bytes()), "{v}");
        }
    }

    #[test]
    fn random_values_are_not_code() {
        // Dotted, but every part random: a token, not a path.
        assert!(!code(
            "edenai_token = Zx7wLp2Vb8Nc4Rs6Yh1Ju5Kq9Tm3.Wd0Gf6Hs8Jk2Lq4Zp7Xc9Vb1",
            "Zx7wLp2Vb8Nc4Rs6Yh1Ju5Kq9Tm3.Wd0Gf6Hs8Jk2Lq4Zp7Xc9Vb1"
        ));
        assert!(!code(
            "api_key = \"Zx7wLp2Vb8Nc4Rs6Yh1Ju5Kq\"",
            "Zx7wLp2Vb8Nc4Rs6Yh1Ju5Kq"
        ));
        assert!(!code(
            "DB_PASSWORD=FAKE-pg-pass-7c41e2-DEMO",
            "FAKE-pg-pass-7c41e2-DEMO"
        ));
        assert!(!code("password = \"Tr0ub4dor.3x!\"", "Tr0ub4dor.3x!"));
        assert!(!code(
            "secret_key = \"3f9a0c7e5b21d4a8\"",
            "3f9a0c7e5b21d4a8"
        ));
    }
}
