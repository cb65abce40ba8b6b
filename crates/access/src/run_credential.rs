//! Run credentials (Contract 4): what the edge signs when it accepts a room's submission, so
//! the fleet worker running it may open that run's live channel to the room, and nothing else.
//!
//! # Layout
//!
//! A credential is the unpadded URL-safe base64 of `payload || tag`:
//!
//! | bytes | field                                                          |
//! |-------|----------------------------------------------------------------|
//! | 1     | [`KIND`]: never a room token's version byte                    |
//! | 8     | expiry, Unix seconds (big-endian u64)                          |
//! | 1     | length of the submission id                                    |
//! | 1-64  | the submission id (ASCII)                                      |
//! | 1-64  | the room id (ASCII)                                            |
//! | 32    | tag: HMAC-SHA-256 over everything before it                    |
//!
//! The tag's key is derived from the room-token secret for this one purpose
//! (HMAC-SHA-256(secret, [`KEY_PURPOSE`])), so a credential never passes as a room token and a
//! room token never passes as a credential, even though one secret backs both. A credential
//! always expires (with its run); like tokens, it is never logged.

use hmac::{KeyInit, Mac};

use crate::token::{seal, unseal, Denied, HmacSha256, WeakSecret, MIN_SECRET_BYTES};

/// The first byte of every run credential.
pub const KIND: u8 = b'R';
/// What the signing key is derived for.
pub const KEY_PURPOSE: &[u8] = b"codebox run credential v1";
/// The longest submission or room id a credential may name.
const MAX_ID_BYTES: usize = 64;
/// Bytes before the ids: kind, expiry, the submission id's length.
const HEADER_BYTES: usize = 1 + 8 + 1;

/// The longest credential [`RunKey::sign`] makes (base64 of the longest payload and its tag).
pub const MAX_CREDENTIAL_BYTES: usize = (HEADER_BYTES + 2 * MAX_ID_BYTES + 32).div_ceil(3) * 4;

/// A submission id for a live run, from 16 random bytes: the edge names the run before the
/// exec API records it, so the credential can name it. The form is the exec API's own, a
/// hyphenated version-4 UUID.
pub fn new_submission_id(mut random: [u8; 16]) -> String {
    random[6] = (random[6] & 0x0f) | 0x40;
    random[8] = (random[8] & 0x3f) | 0x80;
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// What a run credential says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunClaims {
    /// The room the run streams into.
    pub room: String,
    /// The submission being run.
    pub submission: String,
    /// Unix seconds after which it is refused.
    pub expires_at: u64,
}

/// The key run credentials are signed with, derived from the room-token secret.
#[derive(Clone)]
pub struct RunKey {
    mac: HmacSha256,
}

impl std::fmt::Debug for RunKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunKey(..)")
    }
}

impl RunKey {
    /// The run key of the room-token secret; refuses secrets shorter than
    /// [`MIN_SECRET_BYTES`].
    pub fn new(secret: &[u8]) -> Result<Self, WeakSecret> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(WeakSecret(secret.len()));
        }
        let mut derive =
            HmacSha256::new_from_slice(secret).map_err(|_| WeakSecret(secret.len()))?;
        derive.update(KEY_PURPOSE);
        let key = derive.finalize().into_bytes();
        let mac = HmacSha256::new_from_slice(&key).map_err(|_| WeakSecret(secret.len()))?;
        Ok(RunKey { mac })
    }

    /// The credential for `claims` (ids of 1 to 64 ASCII bytes).
    pub fn sign(&self, claims: &RunClaims) -> String {
        debug_assert!((1..=MAX_ID_BYTES).contains(&claims.submission.len()));
        debug_assert!((1..=MAX_ID_BYTES).contains(&claims.room.len()));
        let mut bytes =
            Vec::with_capacity(HEADER_BYTES + claims.submission.len() + claims.room.len());
        bytes.push(KIND);
        bytes.extend_from_slice(&claims.expires_at.to_be_bytes());
        bytes.push(claims.submission.len() as u8);
        bytes.extend_from_slice(claims.submission.as_bytes());
        bytes.extend_from_slice(claims.room.as_bytes());
        seal(&self.mac, bytes)
    }

    /// The claims of `credential` if this key signed it for `room` and it has not expired at
    /// `now` (Unix seconds). Which submission it names is the room's to check: only a run it
    /// holds may stream into it.
    pub fn verify(&self, credential: &str, room: &str, now: u64) -> Result<RunClaims, Denied> {
        let claims = self.open(credential)?;
        if claims.room != room {
            return Err(Denied::OtherRoom);
        }
        if now >= claims.expires_at {
            return Err(Denied::Expired);
        }
        Ok(claims)
    }

    fn open(&self, credential: &str) -> Result<RunClaims, Denied> {
        if credential.is_empty() {
            return Err(Denied::Missing);
        }
        let payload = unseal(
            &self.mac,
            credential,
            HEADER_BYTES + 2..=HEADER_BYTES + 2 * MAX_ID_BYTES,
        )?;
        if payload[0] != KIND {
            return Err(Denied::Malformed);
        }
        let expires_at =
            u64::from_be_bytes(payload[1..9].try_into().map_err(|_| Denied::Malformed)?);
        let submission_len = usize::from(payload[9]);
        let ids = &payload[HEADER_BYTES..];
        if submission_len == 0 || submission_len >= ids.len() {
            return Err(Denied::Malformed);
        }
        let (submission, room) = ids.split_at(submission_len);
        let text = |bytes: &[u8]| {
            std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|_| Denied::Malformed)
        };
        Ok(RunClaims {
            room: text(room)?,
            submission: text(submission)?,
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submission_ids_are_version_4_uuids() {
        assert_eq!(
            new_submission_id([0xff; 16]),
            "ffffffff-ffff-4fff-bfff-ffffffffffff"
        );
        assert_eq!(
            new_submission_id([0; 16]),
            "00000000-0000-4000-8000-000000000000"
        );
    }

    #[test]
    fn the_longest_credential_fits_its_bound() {
        let key = RunKey::new(&[7; 32]).unwrap();
        let credential = key.sign(&RunClaims {
            room: "r".repeat(MAX_ID_BYTES),
            submission: "s".repeat(MAX_ID_BYTES),
            expires_at: u64::MAX,
        });
        assert!(
            credential.len() <= MAX_CREDENTIAL_BYTES,
            "{}",
            credential.len()
        );
    }
    use crate::token::{Claims, Role, TokenKey};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims() -> RunClaims {
        RunClaims {
            room: "AbCdEfGhIjKlMnOpQrStUv".into(),
            submission: "5f0c6a52-8f6e-4d8e-9a3b-2f7d6c1e0b9a".into(),
            expires_at: 1_000,
        }
    }

    #[test]
    fn a_credential_opens_its_run_in_its_room_until_it_expires() {
        let key = RunKey::new(SECRET).unwrap();
        let credential = key.sign(&claims());
        assert_eq!(credential, key.sign(&claims()), "deterministic");
        assert_eq!(key.verify(&credential, &claims().room, 999), Ok(claims()));
        assert_eq!(
            key.verify(&credential, &claims().room, 1_000),
            Err(Denied::Expired)
        );
        assert_eq!(
            key.verify(&credential, "another-room", 0),
            Err(Denied::OtherRoom)
        );
        assert_eq!(key.verify("", &claims().room, 0), Err(Denied::Missing));
        let other = RunKey::new(b"another secret, long enough to sign with").unwrap();
        assert_eq!(
            other.verify(&credential, &claims().room, 0),
            Err(Denied::Malformed)
        );
        assert!(!format!("{key:?}").contains("0123"));
    }

    #[test]
    fn credentials_and_room_tokens_never_pass_for_each_other() {
        let runs = RunKey::new(SECRET).unwrap();
        let tokens = TokenKey::new(SECRET).unwrap();
        let room = claims().room;
        let token = tokens.sign(&Claims {
            room: room.clone(),
            role: Role::Edit,
            generation: 0,
            expires_at: None,
        });
        assert_eq!(runs.verify(&token, &room, 0), Err(Denied::Malformed));
        let credential = runs.sign(&claims());
        assert_eq!(tokens.verify(&credential, &room, 0), Err(Denied::Malformed));
    }

    #[test]
    fn any_changed_byte_is_refused() {
        let key = RunKey::new(SECRET).unwrap();
        let bytes = URL_SAFE_NO_PAD.decode(key.sign(&claims())).unwrap();
        for i in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[i] ^= 0x01;
            let forged = URL_SAFE_NO_PAD.encode(&changed);
            assert_eq!(
                key.verify(&forged, &claims().room, 0),
                Err(Denied::Malformed),
                "byte {i}"
            );
        }
        assert_eq!(RunKey::new(b"short").unwrap_err(), WeakSecret(5));
    }

    proptest! {
        #[test]
        fn claims_round_trip(
            room in "[A-Za-z0-9_-]{1,64}",
            submission in "[a-f0-9-]{1,64}",
            expires_at in 1u64..u64::MAX,
        ) {
            let key = RunKey::new(SECRET).unwrap();
            let claims = RunClaims { room: room.clone(), submission, expires_at };
            prop_assert_eq!(key.verify(&key.sign(&claims), &room, expires_at - 1), Ok(claims));
        }
    }
}
