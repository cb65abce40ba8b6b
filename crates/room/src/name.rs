//! Room names, as they appear in `/rooms/{room}`.

/// Longest room name.
pub const MAX_ROOM_NAME: usize = 64;

/// Whether `name` is a valid room name: 1 to 64 of `[A-Za-z0-9_-]`.
pub fn is_valid_room_name(name: &str) -> bool {
    (1..=MAX_ROOM_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        assert!(is_valid_room_name("a"));
        assert!(is_valid_room_name("Brave-Otter_42"));
        assert!(is_valid_room_name(&"x".repeat(64)));
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "a b",
            "a/b",
            "a.b",
            "%41",
            "é",
            "room?",
            &"x".repeat(65),
        ] {
            assert!(!is_valid_room_name(bad), "{bad:?}");
        }
    }
}
