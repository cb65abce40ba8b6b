//! Room ids, the names `/rooms/{room}` accepts, and the links that open a room.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::Role;

/// Longest room name (Contract 1).
pub const MAX_ROOM_NAME: usize = 64;

/// Whether `name` is a valid room name: 1 to 64 of `[A-Za-z0-9_-]`.
pub fn is_valid_room_name(name: &str) -> bool {
    (1..=MAX_ROOM_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Random bytes in a room id: 128 bits, so rooms cannot be found by guessing.
pub const ROOM_ID_BYTES: usize = 16;

/// A room id from 128 random bits: 22 URL-safe characters, within the room-name pattern
/// `[A-Za-z0-9_-]{1,64}`.
pub fn new_room_id(random: [u8; ROOM_ID_BYTES]) -> String {
    URL_SAFE_NO_PAD.encode(random)
}

/// The IDE link that opens `room` with `token` (`{origin}/r/{room}#{role}={token}`). The token
/// travels in the fragment, which browsers never send to a server.
pub fn room_link(origin: &str, room: &str, role: Role, token: &str) -> String {
    format!(
        "{}/r/{room}#{}={token}",
        origin.trim_end_matches('/'),
        role.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        assert!(is_valid_room_name("a"));
        assert!(is_valid_room_name("Brave-Otter_42"));
        assert!(is_valid_room_name(&"x".repeat(64)));
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

    #[test]
    fn ids_are_22_url_safe_characters() {
        let id = new_room_id([0xff; ROOM_ID_BYTES]);
        assert_eq!(id.len(), 22);
        assert!(is_valid_room_name(&id));
        assert_ne!(id, new_room_id([0; ROOM_ID_BYTES]));
    }

    #[test]
    fn links_carry_the_token_in_the_fragment() {
        assert_eq!(
            room_link("https://codebox.example/", "abc", Role::View, "T"),
            "https://codebox.example/r/abc#view=T"
        );
    }
}
