//! Room tokens: opaque, URL-safe strings the edge signs and checks.
//!
//! # Layout
//!
//! A token is the unpadded URL-safe base64 of `payload || tag`:
//!
//! | bytes | field                                                          |
//! |-------|----------------------------------------------------------------|
//! | 1     | format version ([`VERSION`])                                   |
//! | 1     | role: 0 = edit, 1 = view                                       |
//! | 4     | the room's link generation (big-endian u32)                    |
//! | 8     | expiry, Unix seconds (big-endian u64; 0 = never)               |
//! | 1-64  | the room id (ASCII, as in `/rooms/{room}`)                     |
//! | 32    | tag: HMAC-SHA-256 over everything before it, keyed by the secret |
//!
//! Everything a check needs is in the token, so the Worker refuses forgeries, other rooms and
//! expired links without touching storage; only the generation needs the room (its Durable
//! Object), which bumps it to revoke every older link at once. Tokens are deterministic: the
//! same claims always sign to the same string. The tag is compared in constant time, and
//! tokens are never logged (their [`std::fmt::Debug`] hides them).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

/// The token format this code writes and accepts.
pub const VERSION: u8 = 1;
/// The longest token string accepted (Contract 3).
pub const MAX_TOKEN_CHARS: usize = 256;
/// The shortest secret accepted as a signing key: 256 bits of it, as hex or base64 text.
pub const MIN_SECRET_BYTES: usize = 32;
/// The longest room id a token may name (Contract 1).
const MAX_ROOM_BYTES: usize = 64;
/// Bytes of the tag (the full HMAC-SHA-256 output).
const TAG_BYTES: usize = 32;
/// Bytes before the room id.
const HEADER_BYTES: usize = 1 + 1 + 4 + 8;

pub(crate) type HmacSha256 = hmac::Hmac<Sha256>;

/// `payload || HMAC(payload)`, unpadded URL-safe base64: how tokens and run credentials
/// are written.
pub(crate) fn seal(mac: &HmacSha256, mut payload: Vec<u8>) -> String {
    let mut mac = mac.clone();
    mac.update(&payload);
    payload.extend_from_slice(&mac.finalize().into_bytes());
    URL_SAFE_NO_PAD.encode(payload)
}

/// The payload of a [`seal`]ed string if `mac` signed it and the payload's length is in
/// `payload_len`; the tag is compared in constant time.
pub(crate) fn unseal(
    mac: &HmacSha256,
    sealed: &str,
    payload_len: std::ops::RangeInclusive<usize>,
) -> Result<Vec<u8>, Denied> {
    let mut bytes = URL_SAFE_NO_PAD
        .decode(sealed)
        .map_err(|_| Denied::Malformed)?;
    let len = bytes
        .len()
        .checked_sub(TAG_BYTES)
        .ok_or(Denied::Malformed)?;
    if !payload_len.contains(&len) {
        return Err(Denied::Malformed);
    }
    let tag = bytes.split_off(len);
    let mut mac = mac.clone();
    mac.update(&bytes);
    mac.verify_slice(&tag).map_err(|_| Denied::Malformed)?;
    Ok(bytes)
}

/// What a token lets its holder do in its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything and change the document; start runs; rotate the links.
    Edit,
    /// Read everything; presence is marked read-only; never change the document.
    View,
}

impl Role {
    /// The role's name, as in links (`#edit=`, `#view=`) and in presence.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Edit => "edit",
            Role::View => "view",
        }
    }

    fn to_byte(self) -> u8 {
        match self {
            Role::Edit => 0,
            Role::View => 1,
        }
    }

    fn from_byte(byte: u8) -> Option<Role> {
        match byte {
            0 => Some(Role::Edit),
            1 => Some(Role::View),
            _ => None,
        }
    }
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    /// The room it opens.
    pub room: String,
    /// What it allows there.
    pub role: Role,
    /// The room's link generation when it was issued; rotation makes it stale.
    pub generation: u32,
    /// Unix seconds after which it is refused; `None`: it never expires.
    pub expires_at: Option<u64>,
}

/// Why a token was refused; [`Denied::status`] is its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No token came with the request.
    #[error("this room needs a link with a token: ask someone in the room for the link")]
    Missing,
    /// The token is not one this edge signed (bad encoding, length, version or signature).
    #[error("the token is malformed or was not issued by this server")]
    Malformed,
    /// A valid token for a different room.
    #[error("this token belongs to another room")]
    OtherRoom,
    /// The token's expiry has passed.
    #[error("this link has expired: ask someone in the room for a new one")]
    Expired,
    /// The room's links were rotated after this token was issued.
    #[error("this link was replaced by a new one: ask someone in the room for the new link")]
    Rotated,
    /// The token does not allow this (a view token where editing is needed).
    #[error("this link is view-only")]
    ViewOnly,
}

impl Denied {
    /// 401 for a missing or invalid token, 403 for a valid one that does not open this.
    pub fn status(self) -> u16 {
        match self {
            Denied::Missing | Denied::Malformed => 401,
            Denied::OtherRoom | Denied::Expired | Denied::Rotated | Denied::ViewOnly => 403,
        }
    }

    /// A short machine-readable code for JSON errors.
    pub fn code(self) -> &'static str {
        match self {
            Denied::Missing => "token_required",
            Denied::Malformed => "invalid_token",
            Denied::OtherRoom => "wrong_room",
            Denied::Expired => "token_expired",
            Denied::Rotated => "link_rotated",
            Denied::ViewOnly => "view_only",
        }
    }
}

/// Why a secret cannot sign tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the token secret must be at least {MIN_SECRET_BYTES} bytes long, got {0}")]
pub struct WeakSecret(pub usize);

/// The key tokens are signed with (the edge's `ROOM_TOKEN_SECRET`).
#[derive(Clone)]
pub struct TokenKey {
    mac: HmacSha256,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A key from the secret's bytes; refuses secrets shorter than [`MIN_SECRET_BYTES`].
    pub fn new(secret: &[u8]) -> Result<Self, WeakSecret> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(WeakSecret(secret.len()));
        }
        let mac = HmacSha256::new_from_slice(secret).map_err(|_| WeakSecret(secret.len()))?;
        Ok(TokenKey { mac })
    }

    /// The token for `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        debug_assert!(!claims.room.is_empty() && claims.room.len() <= MAX_ROOM_BYTES);
        let mut bytes = Vec::with_capacity(HEADER_BYTES + claims.room.len() + TAG_BYTES);
        bytes.push(VERSION);
        bytes.push(claims.role.to_byte());
        bytes.extend_from_slice(&claims.generation.to_be_bytes());
        bytes.extend_from_slice(&claims.expires_at.unwrap_or(0).to_be_bytes());
        bytes.extend_from_slice(claims.room.as_bytes());
        seal(&self.mac, bytes)
    }

    /// The claims of `token` if this key signed it: checks the encoding and the signature
    /// only (see [`TokenKey::verify`] for the room and the expiry).
    pub fn open(&self, token: &str) -> Result<Claims, Denied> {
        if token.is_empty() {
            return Err(Denied::Missing);
        }
        if token.len() > MAX_TOKEN_CHARS {
            return Err(Denied::Malformed);
        }
        let payload = unseal(
            &self.mac,
            token,
            HEADER_BYTES + 1..=HEADER_BYTES + MAX_ROOM_BYTES,
        )?;
        let payload = payload.as_slice();
        if payload[0] != VERSION {
            return Err(Denied::Malformed);
        }
        let role = Role::from_byte(payload[1]).ok_or(Denied::Malformed)?;
        let generation =
            u32::from_be_bytes(payload[2..6].try_into().map_err(|_| Denied::Malformed)?);
        let expires = u64::from_be_bytes(payload[6..14].try_into().map_err(|_| Denied::Malformed)?);
        let room = std::str::from_utf8(&payload[HEADER_BYTES..])
            .map_err(|_| Denied::Malformed)?
            .to_owned();
        Ok(Claims {
            room,
            role,
            generation,
            expires_at: (expires != 0).then_some(expires),
        })
    }

    /// The claims of `token` if it is valid for `room` at `now` (Unix seconds). The room's
    /// generation is checked by the room itself ([`Claims::check_generation`]).
    pub fn verify(&self, token: &str, room: &str, now: u64) -> Result<Claims, Denied> {
        let claims = self.open(token)?;
        if claims.room != room {
            return Err(Denied::OtherRoom);
        }
        claims.check_expiry(now)?;
        Ok(claims)
    }
}

impl Claims {
    /// Whether these claims are still valid at `now` (Unix seconds).
    pub fn check_expiry(&self, now: u64) -> Result<(), Denied> {
        match self.expires_at {
            Some(at) if now >= at => Err(Denied::Expired),
            _ => Ok(()),
        }
    }

    /// Whether these claims are of the room's current link generation.
    pub fn check_generation(&self, current: u32) -> Result<(), Denied> {
        if self.generation == current {
            Ok(())
        } else {
            Err(Denied::Rotated)
        }
    }

    /// Whether these claims allow editing.
    pub fn require_edit(&self) -> Result<(), Denied> {
        match self.role {
            Role::Edit => Ok(()),
            Role::View => Err(Denied::ViewOnly),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn key() -> TokenKey {
        TokenKey::new(SECRET).unwrap()
    }

    fn claims(role: Role) -> Claims {
        Claims {
            room: "Vx3-q_9aZ0bC1dE2fG3hIj".into(),
            role,
            generation: 7,
            expires_at: None,
        }
    }

    #[test]
    fn a_signed_token_opens_to_its_claims() {
        for role in [Role::Edit, Role::View] {
            let token = key().sign(&claims(role));
            assert!(token.len() <= MAX_TOKEN_CHARS);
            assert!(token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(
                key().verify(&token, &claims(role).room, 0),
                Ok(claims(role))
            );
        }
    }

    #[test]
    fn signing_is_deterministic_and_roles_differ() {
        assert_eq!(
            key().sign(&claims(Role::Edit)),
            key().sign(&claims(Role::Edit))
        );
        assert_ne!(
            key().sign(&claims(Role::Edit)),
            key().sign(&claims(Role::View))
        );
    }

    #[test]
    fn another_secret_another_room_or_an_expiry_refuse() {
        let token = key().sign(&claims(Role::Edit));
        let other = TokenKey::new(b"another secret, also 32 bytes long!!").unwrap();
        assert_eq!(
            other.verify(&token, "Vx3-q_9aZ0bC1dE2fG3hIj", 0),
            Err(Denied::Malformed)
        );
        assert_eq!(
            key().verify(&token, "another-room", 0),
            Err(Denied::OtherRoom)
        );
        let expiring = Claims {
            expires_at: Some(1_000),
            ..claims(Role::View)
        };
        let token = key().sign(&expiring);
        assert!(key().verify(&token, &expiring.room, 999).is_ok());
        assert_eq!(
            key().verify(&token, &expiring.room, 1_000),
            Err(Denied::Expired)
        );
    }

    #[test]
    fn malformed_tokens_are_401_and_valid_refusals_403() {
        assert_eq!(key().open(""), Err(Denied::Missing));
        assert_eq!(Denied::Missing.status(), 401);
        for bad in ["x", "!!!!", "AAAA", &"A".repeat(MAX_TOKEN_CHARS + 1)] {
            assert_eq!(key().open(bad), Err(Denied::Malformed), "{bad}");
        }
        assert_eq!(Denied::Malformed.status(), 401);
        for denied in [
            Denied::OtherRoom,
            Denied::Expired,
            Denied::Rotated,
            Denied::ViewOnly,
        ] {
            assert_eq!(denied.status(), 403);
        }
    }

    #[test]
    fn generation_and_role_checks() {
        let edit = claims(Role::Edit);
        assert_eq!(edit.check_generation(7), Ok(()));
        assert_eq!(edit.check_generation(8), Err(Denied::Rotated));
        assert_eq!(edit.require_edit(), Ok(()));
        assert_eq!(claims(Role::View).require_edit(), Err(Denied::ViewOnly));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert_eq!(TokenKey::new(b"short").unwrap_err(), WeakSecret(5));
    }

    proptest! {
        /// Flipping any bit of a token's bytes makes it invalid (never another valid token).
        #[test]
        fn every_tampered_token_is_refused(byte in 0usize..200, bit in 0u8..8, role in any::<bool>()) {
            let role = if role { Role::Edit } else { Role::View };
            let token = key().sign(&claims(role));
            let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
            let at = byte % bytes.len();
            bytes[at] ^= 1 << bit;
            let tampered = URL_SAFE_NO_PAD.encode(bytes);
            prop_assert_eq!(key().open(&tampered), Err(Denied::Malformed));
        }

        /// Whatever the claims, they survive signing and opening.
        #[test]
        fn claims_round_trip(room in "[A-Za-z0-9_-]{1,64}", generation in any::<u32>(),
                             expires in proptest::option::of(1u64..u64::MAX), view in any::<bool>()) {
            let claims = Claims {
                room,
                role: if view { Role::View } else { Role::Edit },
                generation,
                expires_at: expires,
            };
            let token = key().sign(&claims);
            prop_assert!(token.len() <= MAX_TOKEN_CHARS);
            prop_assert_eq!(key().open(&token), Ok(claims));
        }
    }
}
