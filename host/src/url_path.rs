//! Putting an untrusted string into a URL path as one segment: every byte
//! but RFC 3986's unreserved characters is percent-encoded, so a `/`, `?`
//! or `..` in it can never reach another path.

/// `text` as one percent-encoded path segment.
pub fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_unreserved_characters_pass() {
        assert_eq!(super::segment("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(super::segment("../x?y"), "..%2Fx%3Fy");
        assert_eq!(super::segment("é:"), "%C3%A9%3A");
    }
}
