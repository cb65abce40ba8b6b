//! Checks a Yjs v1 update or state vector before yrs decodes it.
//!
//! yrs trusts the counts a payload declares: it reserves room for every declared client,
//! struct and state-vector entry up front, and decodes lib0 `Any` values recursively. A few
//! bytes declaring two billion structs make it reserve gigabytes; a frame of nested arrays
//! overflows the stack. So the room walks every update and state vector first, without
//! recursion, and refuses it unless every declared count fits in the bytes that are left (at
//! the smallest size each counted thing can take) and `Any` values nest at most
//! [`MAX_ANY_DEPTH`] deep. What passes is exactly what yrs then reads, so yrs' own allocations
//! stay within a fixed multiple of the payload. The walk of an update also counts the blocks
//! its integration may split (see [`check_update`]), for the room's size bound; for that it
//! keeps one thing, the update's own block boundaries, and walks twice.
//!
//! # The v1 layout, as yrs 0.28 decodes it
//!
//! `var` is an unsigned LEB128 varint (7 bits a byte, low first), `string` and `buf` are a
//! `var` byte length and the bytes (a string must be UTF-8), an id is `var client, var clock`.
//!
//! ```text
//! update       = var n_clients, n_clients × client, delete_set          (trailing bytes ignored)
//! client       = var n_structs, var client, var first_clock, n_structs × struct
//! struct       = u8 info, then by info:
//!   0            GC:   var len (> 0)
//!   10           Skip: var len (> 0)
//!   otherwise    Item: [info & 0x80] origin id, [info & 0x40] right origin id,
//!                      if neither origin: var parent_kind, 1 = string root name, else parent id;
//!                                         [info & 0x20] string key in the parent map
//!                      content by info & 0x0f (bit 4 is ignored):
//!     1 Deleted  var len                      6 Format  string key, string JSON
//!     2 JSON     var n, then n + 1 strings    7 Type    u8 type ref (3, an XML element: string tag)
//!     3 Binary   buf                          8 Any     var n, n × any
//!     4 String   string                       9 Doc     string guid, any (options)
//!     5 Embed    string JSON
//! delete_set   = var n_clients, n_clients × (var client, var n_ranges, n_ranges × (var clock, var len))
//! state vector = var n, n × (var client, var clock)
//! any          = u8 tag: 127 undefined, 126 null, 125 signed var, 124 f32, 123 f64, 122 i64,
//!                121 false, 120 true, 119 string, 118 map (var n, n × (string, any)),
//!                117 array (var n, n × any), 116 buf
//! ```
//!
//! Each struct advances its client's clock by its length: GC, Skip and Deleted by `len`, a
//! string by its UTF-16 length, Any by `n`, JSON by `n + 1`, anything else by one. yrs reads
//! `n + 1` JSON strings (one more than its encoder writes, and than Yjs writes); the walker
//! follows the decoder, because that is what runs next.
//!
//! Stricter than yrs, so that nothing yrs would panic on (debug builds) or silently wrap
//! (release builds) gets through: client ids fit in 53 bits (Yjs' ids are 32-bit), varints fit
//! their field, clocks never pass `u32::MAX`, the type ref of a weak link (off in this build
//! of yrs) is refused, and the JSON of an embed or a format nests no deeper than `Any` values
//! may (yrs parses it into `Any` values).

/// How deep `Any` values and embedded JSON may nest (arrays and maps in arrays and maps). yrs
/// decodes, encodes and drops them recursively, with large stack frames: deep enough for any
/// real data, shallow enough to fit a wasm module's stack with room to spare.
pub(crate) const MAX_ANY_DEPTH: usize = 64;

/// Client ids are at most 53 bits (yrs asserts it and masks the rest).
const CLIENT_ID_BITS: u32 = 53;

/// Why a payload was refused before yrs saw it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    /// The payload ended inside `0`.
    #[error("{0} runs past the end")]
    Truncated(&'static str),
    /// A varint was too long, or its value does not fit its field.
    #[error("{0} is not a varint that fits its field")]
    BadVarint(&'static str),
    /// A declared count cannot fit in the bytes left.
    #[error("{what}: {count} declared, but only {left} bytes are left")]
    CountTooLarge {
        /// What was counted.
        what: &'static str,
        /// The declared count.
        count: u64,
        /// Bytes left after the count.
        left: usize,
    },
    /// A client id of more than 53 bits.
    #[error("client id {0} is over 53 bits")]
    ClientId(u64),
    /// A client's clocks or a deleted range would pass `u32::MAX`.
    #[error("clock of client {0} would pass 2^32")]
    ClockOverflow(u64),
    /// A GC or Skip struct of length zero.
    #[error("empty GC or Skip struct")]
    EmptyStruct,
    /// An item's content type is not one yrs knows.
    #[error("unknown item content {0}")]
    UnknownContent(u8),
    /// A shared type's type ref is not one yrs knows.
    #[error("unknown type ref {0}")]
    UnknownTypeRef(u8),
    /// An `Any` value's tag is not one lib0 knows.
    #[error("unknown Any tag {0}")]
    UnknownAny(u8),
    /// `Any` values or embedded JSON nest deeper than [`MAX_ANY_DEPTH`].
    #[error("Any values or JSON nest deeper than {MAX_ANY_DEPTH}")]
    TooDeep,
    /// A string is not UTF-8.
    #[error("{0} is not UTF-8")]
    Utf8(&'static str),
}

/// Checks a Yjs v1 update (the payload of SyncStep2 and Update); returns how many blocks its
/// integration may split. `existing(client, clock)` says whether the document holds that id.
///
/// Integrating an item splits the block its origin ends inside, and the block its right origin
/// starts inside; deleting a range splits the blocks at both its ends. Counted as splits: every
/// deleted range twice, and every origin and right origin except those on a boundary of the
/// update's own blocks and beyond the document (honest encoders split blocks where anything is
/// anchored, but the document's blocks are unknown here, and an id found nowhere may split a
/// block that arrives later).
pub(crate) fn check_update(
    update: &[u8],
    existing: &dyn Fn(u64, u32) -> bool,
) -> Result<Splits, WireError> {
    let mut bounds = Vec::new();
    walk_update(update, existing, Bounds::Collect(&mut bounds))?;
    bounds.sort_unstable();
    bounds.dedup();
    walk_update(update, existing, Bounds::Known(&bounds))
}

/// How many blocks an update's integration may split (see [`check_update`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Splits(pub(crate) u64);

/// The (client, clock) pairs where an update's own blocks start or end: gathered on the first
/// walk, looked up on the second.
enum Bounds<'b> {
    Collect(&'b mut Vec<(u64, u32)>),
    Known(&'b [(u64, u32)]),
}

fn walk_update(
    update: &[u8],
    existing: &dyn Fn(u64, u32) -> bool,
    bounds: Bounds,
) -> Result<Splits, WireError> {
    let mut w = Walker {
        buf: update,
        pos: 0,
        existing,
        bounds,
        splits: 0,
    };
    // Smallest sizes: a client entry is three varints; a struct is an info byte and a varint.
    let clients = w.count(32, 3, "clients")?;
    for _ in 0..clients {
        let structs = w.count(32, 2, "structs")?;
        let client = w.client("struct client")?;
        let mut clock = w.clock("first clock")?;
        w.bound(client, clock);
        for _ in 0..structs {
            let len = w.structure()?;
            clock = clock
                .checked_add(len)
                .ok_or(WireError::ClockOverflow(client))?;
            w.bound(client, clock);
        }
    }
    let clients = w.count(32, 2, "delete set clients")?;
    for _ in 0..clients {
        let client = w.client("delete set client")?;
        let ranges = w.count(32, 2, "deleted ranges")?;
        for _ in 0..ranges {
            let clock = w.clock("deleted clock")?;
            let len = w.clock("deleted length")?;
            clock
                .checked_add(len)
                .ok_or(WireError::ClockOverflow(client))?;
            if len > 0 {
                w.splits += 2;
            }
        }
    }
    Ok(Splits(w.splits))
}

/// Checks an encoded state vector (the payload of SyncStep1).
pub(crate) fn check_state_vector(state_vector: &[u8]) -> Result<(), WireError> {
    let mut w = Walker {
        buf: state_vector,
        pos: 0,
        existing: &|_, _| false,
        bounds: Bounds::Known(&[]),
        splits: 0,
    };
    let entries = w.count(32, 2, "state vector entries")?;
    for _ in 0..entries {
        w.client("state vector client")?;
        w.clock("state vector clock")?;
    }
    Ok(())
}

/// A cursor over a payload that reads the layout above, counting what may split.
struct Walker<'a, 'b> {
    buf: &'a [u8],
    pos: usize,
    existing: &'a dyn Fn(u64, u32) -> bool,
    bounds: Bounds<'b>,
    splits: u64,
}

/// One open `Any` array or map: how many values are still to come.
#[derive(Clone, Copy)]
struct Open {
    left: u64,
    map: bool,
}

impl<'a> Walker<'a, '_> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, WireError> {
        let byte = *self.buf.get(self.pos).ok_or(WireError::Truncated(what))?;
        self.pos += 1;
        Ok(byte)
    }

    fn bytes(&mut self, len: u64, what: &'static str) -> Result<&'a [u8], WireError> {
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= self.left())
            .ok_or(WireError::Truncated(what))?;
        let bytes = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }

    /// An unsigned varint whose value fits in `bits` bits. Ends where yrs' reader ends (at
    /// the first byte under 0x80); refuses what yrs would wrap or truncate.
    fn var(&mut self, bits: u32, what: &'static str) -> Result<u64, WireError> {
        let mut value = 0u64;
        let mut shift = 0u32;
        loop {
            let byte = self.byte(what)?;
            let payload = u64::from(byte & 0x7f);
            if payload != 0 {
                let fits = shift < bits && payload.checked_shr(bits - shift).unwrap_or(0) == 0;
                if !fits {
                    return Err(WireError::BadVarint(what));
                }
                value |= payload << shift;
            }
            if byte < 0x80 {
                return Ok(value);
            }
            shift += 7;
            if shift >= u64::BITS {
                return Err(WireError::BadVarint(what));
            }
        }
    }

    /// lib0's signed varint (sign in bit 6 of the first byte). yrs shifts and negates it in an
    /// `i64`, which panics in debug builds past 63 bits: refuse those.
    fn signed(&mut self, what: &'static str) -> Result<(), WireError> {
        if self.byte(what)? < 0x80 {
            return Ok(());
        }
        let mut shift = 6u32;
        loop {
            let byte = self.byte(what)?;
            let room = 63 - shift; // value bits left below bit 63
            if room < 7 && u32::from(byte & 0x7f) >> room != 0 {
                return Err(WireError::BadVarint(what));
            }
            if byte < 0x80 {
                return Ok(());
            }
            shift += 7;
            if shift > 62 {
                return Err(WireError::BadVarint(what));
            }
        }
    }

    /// A count of things that take at least `min_bytes` each, which must fit in what is left.
    fn count(&mut self, bits: u32, min_bytes: u64, what: &'static str) -> Result<u64, WireError> {
        let count = self.var(bits, what)?;
        let left = self.left();
        if count.saturating_mul(min_bytes) > left as u64 {
            return Err(WireError::CountTooLarge { what, count, left });
        }
        Ok(count)
    }

    fn client(&mut self, what: &'static str) -> Result<u64, WireError> {
        let client = self.var(u64::BITS, what)?;
        if client >> CLIENT_ID_BITS != 0 {
            return Err(WireError::ClientId(client));
        }
        Ok(client)
    }

    fn clock(&mut self, what: &'static str) -> Result<u32, WireError> {
        let clock = self.var(u32::BITS, what)?;
        u32::try_from(clock).map_err(|_| WireError::BadVarint(what))
    }

    fn id(&mut self, what: &'static str) -> Result<(u64, u32), WireError> {
        Ok((self.client(what)?, self.clock(what)?))
    }

    /// A place where one of the update's own blocks starts or ends.
    fn bound(&mut self, client: u64, clock: u32) {
        if let Bounds::Collect(bounds) = &mut self.bounds {
            bounds.push((client, clock));
        }
    }

    /// An origin (the item goes after it: a block must end there) or a right origin (a block
    /// must start there); counts a split unless one of the update's own blocks does.
    fn neighbour(&mut self, what: &'static str, origin: bool) -> Result<(), WireError> {
        let (client, clock) = self.id(what)?;
        if let Bounds::Known(bounds) = self.bounds {
            let bound = if origin {
                clock.checked_add(1)
            } else {
                Some(clock)
            };
            let free = !(self.existing)(client, clock)
                && bound.is_some_and(|bound| bounds.binary_search(&(client, bound)).is_ok());
            if !free {
                self.splits += 1;
            }
        }
        Ok(())
    }

    fn buf(&mut self, what: &'static str) -> Result<&'a [u8], WireError> {
        let len = self.var(u32::BITS, what)?;
        self.bytes(len, what)
    }

    fn string(&mut self, what: &'static str) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.buf(what)?).map_err(|_| WireError::Utf8(what))
    }

    /// A string of JSON that yrs parses (an embed, a format value): its arrays and objects
    /// may nest at most [`MAX_ANY_DEPTH`] deep. Whether it is JSON at all is serde_json's call.
    fn json(&mut self, what: &'static str) -> Result<(), WireError> {
        let mut depth = 0usize;
        let (mut in_string, mut escaped) = (false, false);
        for byte in self.string(what)?.bytes() {
            if in_string {
                match byte {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => in_string = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_ANY_DEPTH {
                        return Err(WireError::TooDeep);
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        Ok(())
    }

    /// One struct; returns how far it advances its client's clock.
    fn structure(&mut self) -> Result<u32, WireError> {
        const GC: u8 = 0;
        const SKIP: u8 = 10;
        const HAS_ORIGIN: u8 = 0x80;
        const HAS_RIGHT_ORIGIN: u8 = 0x40;
        const HAS_PARENT_SUB: u8 = 0x20;
        let info = self.byte("struct info")?;
        if info == GC || info == SKIP {
            let len = self.clock("GC or Skip length")?;
            return if len == 0 {
                Err(WireError::EmptyStruct)
            } else {
                Ok(len)
            };
        }
        if info & HAS_ORIGIN != 0 {
            self.neighbour("origin", true)?;
        }
        if info & HAS_RIGHT_ORIGIN != 0 {
            self.neighbour("right origin", false)?;
        }
        if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
            if self.var(u32::BITS, "parent kind")? == 1 {
                self.string("root name")?;
            } else {
                self.id("parent")?;
            }
            if info & HAS_PARENT_SUB != 0 {
                self.string("parent key")?;
            }
        }
        self.content(info & 0x0f)
    }

    /// An item's content; returns its length in clock ticks.
    fn content(&mut self, content: u8) -> Result<u32, WireError> {
        match content {
            1 => self.clock("deleted length"),
            2 => {
                // yrs reads the count as an i32 and then count + 1 strings.
                let count = self.var(u32::BITS, "JSON values")?;
                let strings = u32::try_from(count)
                    .ok()
                    .filter(|&count| count <= i32::MAX as u32)
                    .map(|count| count + 1)
                    .ok_or(WireError::BadVarint("JSON values"))?;
                let left = self.left();
                if u64::from(strings) > left as u64 {
                    return Err(WireError::CountTooLarge {
                        what: "JSON values",
                        count: strings.into(),
                        left,
                    });
                }
                for _ in 0..strings {
                    self.string("JSON value")?;
                }
                Ok(strings)
            }
            3 => self.buf("binary").map(|_| 1),
            4 => {
                let text = self.string("string")?;
                let units = text.chars().map(char::len_utf16).sum::<usize>();
                // At most the byte length, which fits a u32 varint.
                u32::try_from(units).map_err(|_| WireError::BadVarint("string"))
            }
            5 => self.json("embed").map(|_| 1),
            6 => {
                self.string("format key")?;
                self.json("format value").map(|_| 1)
            }
            7 => {
                match self.byte("type ref")? {
                    0..=2 | 4..=6 | 9 | 15 => {}
                    3 => {
                        self.string("XML element tag")?;
                    }
                    other => return Err(WireError::UnknownTypeRef(other)),
                }
                Ok(1)
            }
            8 => {
                let count = self.count(u32::BITS, 1, "Any values")?;
                for _ in 0..count {
                    self.any()?;
                }
                // `count` fits in a u32: it was read as one.
                u32::try_from(count).map_err(|_| WireError::BadVarint("Any values"))
            }
            9 => {
                self.string("subdocument guid")?;
                self.any().map(|_| 1)
            }
            other => Err(WireError::UnknownContent(other)),
        }
    }

    /// One lib0 `Any` value, with nested arrays and maps walked on a fixed-size stack.
    fn any(&mut self) -> Result<(), WireError> {
        let mut open = [Open {
            left: 0,
            map: false,
        }; MAX_ANY_DEPTH];
        let mut depth = 0;
        loop {
            let container = match self.byte("Any tag")? {
                120 | 121 | 126 | 127 => None,
                125 => {
                    self.signed("Any integer")?;
                    None
                }
                124 => {
                    self.bytes(4, "Any f32")?;
                    None
                }
                122 | 123 => {
                    self.bytes(8, "Any f64 or i64")?;
                    None
                }
                119 => {
                    self.string("Any string")?;
                    None
                }
                116 => {
                    self.buf("Any buffer")?;
                    None
                }
                // A map entry is a key and a value, a byte each at least.
                118 => Some(Open {
                    left: self.count(u64::BITS, 2, "Any map entries")?,
                    map: true,
                }),
                117 => Some(Open {
                    left: self.count(u64::BITS, 1, "Any array values")?,
                    map: false,
                }),
                other => return Err(WireError::UnknownAny(other)),
            };
            if let Some(container) = container {
                // yrs recurses into every container, empty or not.
                if depth == MAX_ANY_DEPTH {
                    return Err(WireError::TooDeep);
                }
                open[depth] = container;
                depth += 1;
            }
            // Close finished containers; then read the next map key, if the value is in a map.
            loop {
                let Some(top) = depth.checked_sub(1).map(|i| &mut open[i]) else {
                    return Ok(());
                };
                if top.left == 0 {
                    depth -= 1;
                    continue;
                }
                top.left -= 1;
                if top.map {
                    self.string("Any map key")?;
                }
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::encoding::write::Write;
    use yrs::updates::decoder::Decode;
    use yrs::updates::encoder::Encode;
    use yrs::{
        Any, Array, Doc, GetString, Map, MapPrelim, ReadTxn, StateVector, Text, Transact, Update,
        Xml, XmlElementPrelim, XmlFragment, XmlTextPrelim,
    };

    fn var(out: &mut Vec<u8>, value: u64) {
        out.write_var(value);
    }

    /// Checks an update against a document that holds nothing yet.
    fn check(update: &[u8]) -> Result<Splits, WireError> {
        check_update(update, &|_, _| false)
    }

    /// An update with one client (id 1, from clock 0) holding `structs` raw structs, and no
    /// deletions.
    fn one_client(structs: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![1];
        var(&mut out, structs.len() as u64);
        out.extend([1, 0]);
        for s in structs {
            out.extend_from_slice(s);
        }
        out.push(0); // empty delete set
        out
    }

    /// An Any-content item in root "r": info 8, parent kind 1, "r", then `any` once.
    fn any_item(any: &[u8]) -> Vec<u8> {
        let mut out = vec![8, 1, 1, b'r', 1];
        out.extend_from_slice(any);
        out
    }

    /// A document whose text positions count UTF-16 units, as Yjs' do.
    fn utf16_doc(client: u64) -> Doc {
        Doc::with_options(yrs::Options {
            offset_kind: yrs::OffsetKind::Utf16,
            ..yrs::Options::with_client_id(yrs::ClientID::new(client))
        })
    }

    #[test]
    fn accepts_what_yrs_writes_for_every_kind_of_content() {
        let doc = utf16_doc(7);
        let text = doc.get_or_insert_text("text");
        let map = doc.get_or_insert_map("map");
        let array = doc.get_or_insert_array("array");
        let xml = doc.get_or_insert_xml_fragment("xml");
        {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 0, "héllo 🦀 wörld");
            text.format(&mut txn, 1, 3, [("bold".into(), Any::Bool(true))].into());
            text.insert_embed(
                &mut txn,
                2,
                Any::from(vec![Any::from("embedded"), Any::Null]),
            );
            text.remove_range(&mut txn, 0, 1);
            map.insert(&mut txn, "n", -123_456_789_i64);
            map.insert(&mut txn, "f", 1.5);
            map.insert(&mut txn, "big", i64::MAX - 1);
            map.insert(&mut txn, "bytes", Any::from(vec![0u8, 255]));
            map.insert(
                &mut txn,
                "nested",
                [("k", Any::Undefined)].into_iter().collect::<MapPrelim>(),
            );
            map.insert(&mut txn, "subdoc", Doc::new());
            array.insert_range(&mut txn, 0, [1, 2, 3]);
            array.remove_range(&mut txn, 1, 1);
            let element = xml.insert(&mut txn, 0, XmlElementPrelim::empty("div"));
            element.insert_attribute(&mut txn, "class", "x");
            element.insert(&mut txn, 0, XmlTextPrelim::new("inside"));
        }
        let update = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        assert!(check(&update).is_ok());
        let sv = doc.transact().state_vector().encode_v1();
        assert_eq!(check_state_vector(&sv), Ok(()));
        // yrs agrees it is one whole update.
        let copy = Doc::new();
        copy.transact_mut()
            .apply_update(Update::decode_v1(&update).unwrap())
            .unwrap();
        assert_eq!(
            copy.get_or_insert_text("text").get_string(&copy.transact()),
            text.get_string(&doc.transact())
        );
    }

    #[test]
    fn refuses_counts_the_bytes_cannot_hold() {
        // 2^31 clients in a five-byte payload.
        let mut bomb = vec![];
        var(&mut bomb, 1 << 31);
        assert!(matches!(
            check(&bomb),
            Err(WireError::CountTooLarge {
                what: "clients",
                ..
            })
        ));
        let mut bomb = vec![1];
        var(&mut bomb, u32::MAX.into());
        bomb.extend([1, 0]);
        assert!(matches!(
            check(&bomb),
            Err(WireError::CountTooLarge {
                what: "structs",
                ..
            })
        ));
        let mut sv = vec![];
        var(&mut sv, 1 << 30);
        assert!(matches!(
            check_state_vector(&sv),
            Err(WireError::CountTooLarge { .. })
        ));
        let mut deletes = vec![0, 1, 5];
        var(&mut deletes, 1 << 28);
        assert!(matches!(
            check(&deletes),
            Err(WireError::CountTooLarge {
                what: "deleted ranges",
                ..
            })
        ));
        let mut array = vec![117];
        var(&mut array, 1 << 40);
        assert!(matches!(
            check(&one_client(&[&any_item(&array)])),
            Err(WireError::CountTooLarge {
                what: "Any array values",
                ..
            })
        ));
        // Exactly as many values as bytes is fine.
        let nulls = [117, 3, 126, 126, 126];
        assert!(check(&one_client(&[&any_item(&nulls)])).is_ok());
        let mut map = vec![118];
        var(&mut map, 3);
        map.extend([1, b'a', 126, 1, b'b', 126]);
        assert!(matches!(
            check(&one_client(&[&any_item(&map)])),
            Err(WireError::CountTooLarge { .. }) | Err(WireError::Truncated(_))
        ));
    }

    #[test]
    fn counts_the_blocks_an_update_may_split() {
        // Client 1 from clock 0: "ab" (0-1), then "c" after clock 0 (inside "ab"), then "d"
        // after clock 1 (the end of "ab"), then "e" before clock 2 (the start of "c"), then
        // "f" after (7, 5); and deleted ranges of clients 7 and 9.
        let mut update = one_client(&[
            &[4, 1, 1, b't', 2, b'a', b'b'],
            &[0x84, 1, 0, 1, b'c'],
            &[0x84, 1, 1, 1, b'd'],
            &[0x44, 1, 2, 1, b'e'],
            &[0x84, 7, 5, 1, b'f'],
        ]);
        update.pop(); // the empty delete set
        update.extend([2, 7, 1, 2, 3, 9, 1, 0, 1]);
        // Nothing exists yet: "c" splits "ab", "f" names an id found nowhere, two ranges.
        assert_eq!(check_update(&update, &|_, _| false), Ok(Splits(2 + 4)));
        // Client 7 exists up to clock 6: the same.
        let sevens = |client: u64, clock: u32| client == 7 && clock < 6;
        assert_eq!(check_update(&update, &sevens), Ok(Splits(2 + 4)));
        // Everything exists: every neighbour may split a block of the document.
        assert_eq!(check_update(&update, &|_, _| true), Ok(Splits(4 + 4)));
        assert!(Update::decode_v1(&update).is_ok());
    }

    #[test]
    fn json_content_is_read_as_yrs_reads_it() {
        // A JSON item with an origin (so no parent), declaring one value and carrying two:
        // yrs reads n + 1 strings, and so does the walker.
        let item = [0x80 | 2, 1, 0, 1, 2, b'1', b'2', 1, b'3'];
        let update = one_client(&[&item]);
        assert!(check(&update).is_ok());
        let decoded = Update::decode_v1(&update).unwrap();
        assert_eq!(decoded.state_vector().get(&yrs::block::ClientID::new(1)), 2);
        // Declaring two values there is one string too few for yrs.
        let mut short = item;
        short[3] = 2;
        assert!(check(&one_client(&[&short])).is_err());
        // And a count yrs would read as a negative i32 is refused.
        let mut negative = vec![0x80 | 2, 1, 0];
        var(&mut negative, 1 << 31);
        assert_eq!(
            check(&one_client(&[&negative])),
            Err(WireError::BadVarint("JSON values"))
        );
    }

    #[test]
    fn bounds_any_nesting() {
        let nested = |depth: usize| {
            let mut any = Vec::new();
            for _ in 0..depth {
                any.extend([117, 1]);
            }
            any.push(126);
            any
        };
        assert!(check(&one_client(&[&any_item(&nested(MAX_ANY_DEPTH))])).is_ok());
        assert_eq!(
            check(&one_client(&[&any_item(&nested(MAX_ANY_DEPTH + 1))])),
            Err(WireError::TooDeep)
        );
        // Maps count too, empty containers too.
        let mut maps = Vec::new();
        for _ in 0..MAX_ANY_DEPTH {
            maps.extend([118, 1, 1, b'k']);
        }
        maps.extend([117, 0]);
        assert_eq!(
            check(&one_client(&[&any_item(&maps)])),
            Err(WireError::TooDeep)
        );
        // Siblings do not add depth.
        let wide = [117, 3, 117, 0, 118, 0, 117, 1, 126];
        assert!(check(&one_client(&[&any_item(&wide)])).is_ok());
        // So does the JSON of an embed or a format, outside its strings.
        let embed = |json: &str| {
            let mut item = vec![5, 1, 1, b'r'];
            item.write_string(json);
            check(&one_client(&[&item]))
        };
        let deepest = "[".repeat(MAX_ANY_DEPTH) + &"]".repeat(MAX_ANY_DEPTH);
        assert!(embed(&deepest).is_ok());
        let deeper = format!("{{\"k\":{deepest}}}");
        assert_eq!(embed(&deeper), Err(WireError::TooDeep));
        let quoted = format!("[\"{}\\\"{}\"]", "[".repeat(200), "{".repeat(200));
        assert!(embed(&quoted).is_ok(), "brackets in strings do not count");
        let mut format = vec![6, 1, 1, b'r', 1, b'b'];
        format.write_string(&deeper);
        assert_eq!(check(&one_client(&[&format])), Err(WireError::TooDeep));
        // A subdocument's options are an Any too.
        let mut doc = vec![9, 1, 1, b'r', 1, b'g'];
        doc.extend(nested(MAX_ANY_DEPTH + 1));
        assert_eq!(check(&one_client(&[&doc])), Err(WireError::TooDeep));
    }

    #[test]
    fn refuses_what_yrs_would_panic_on_or_wrap() {
        // A client id of 2^53.
        let mut sv = vec![1];
        var(&mut sv, 1 << 53);
        sv.push(0);
        assert_eq!(check_state_vector(&sv), Err(WireError::ClientId(1 << 53)));
        // Two GC structs whose clocks pass u32::MAX.
        let mut gc = vec![0];
        var(&mut gc, u32::MAX.into());
        assert_eq!(
            check(&one_client(&[&gc, &[0, 1]])),
            Err(WireError::ClockOverflow(1))
        );
        assert!(check(&one_client(&[&gc])).is_ok());
        // A deleted range past u32::MAX.
        let mut deletes = vec![0, 1, 1, 1];
        var(&mut deletes, u32::MAX.into());
        var(&mut deletes, 1);
        assert_eq!(check(&deletes), Err(WireError::ClockOverflow(1)));
        // A clock varint over 32 bits, and an eleven-byte varint.
        let mut wide = vec![0, 1, 1];
        var(&mut wide, 1 << 32);
        var(&mut wide, 1);
        assert!(matches!(check(&wide), Err(WireError::BadVarint(_))));
        let long = [0x80; 10].iter().copied().chain([0]).collect::<Vec<_>>();
        assert!(matches!(check(&long), Err(WireError::BadVarint(_))));
        // Padded varints that still fit are read as yrs reads them.
        assert!(check(&[0x80, 0x80, 0x00, 0x00]).is_ok());
        // Any integers: the largest magnitude below 2^63, then one bit more, then too long.
        let int = |bytes: &[u8]| {
            let mut any = vec![125];
            any.extend_from_slice(bytes);
            check(&one_client(&[&any_item(&any)]))
        };
        let mut max = vec![0xff];
        max.extend([0xff; 8]);
        max.push(0x01);
        assert!(int(&max).is_ok());
        *max.last_mut().unwrap() = 0x03;
        assert!(matches!(int(&max), Err(WireError::BadVarint(_))));
        *max.last_mut().unwrap() = 0x81;
        max.push(0);
        assert!(matches!(int(&max), Err(WireError::BadVarint(_))));
        assert!(int(&[0x7f]).is_ok());
        // Unknown content, type refs (weak links included), Any tags; empty GC.
        assert_eq!(
            check(&one_client(&[&[0x80 | 11, 1, 0]])),
            Err(WireError::UnknownContent(11))
        );
        assert_eq!(
            check(&one_client(&[&[0x80 | 7, 1, 0, 7]])),
            Err(WireError::UnknownTypeRef(7))
        );
        assert_eq!(
            check(&one_client(&[&any_item(&[115])])),
            Err(WireError::UnknownAny(115))
        );
        assert_eq!(check(&one_client(&[&[0, 0]])), Err(WireError::EmptyStruct));
        assert_eq!(
            check(&one_client(&[&[0x80 | 4, 1, 0, 2, 0xc3, 0x28]])),
            Err(WireError::Utf8("string"))
        );
    }

    #[test]
    fn every_truncation_of_a_valid_update_is_refused_or_whole() {
        let doc = Doc::with_client_id(3);
        let map = doc.get_or_insert_map("m");
        map.insert(
            &mut doc.transact_mut(),
            "k",
            Any::from(vec![Any::from("v"), Any::from(2.5)]),
        );
        doc.get_or_insert_text("t")
            .insert(&mut doc.transact_mut(), 0, "abc");
        let update = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        for end in 0..update.len() {
            let cut = &update[..end];
            if check(cut).is_ok() {
                assert!(
                    Update::decode_v1(cut).is_ok(),
                    "accepted a cut yrs cannot decode at {end}"
                );
            }
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// One random edit of one of the kinds of content a Yjs document can hold.
        #[derive(Debug, Clone)]
        enum Edit {
            Text {
                at: u32,
                s: String,
            },
            Format {
                at: u32,
                len: u32,
                key: String,
                on: bool,
            },
            Embed {
                at: u32,
                depth: u8,
            },
            DeleteText {
                at: u32,
                len: u32,
            },
            MapSet {
                key: String,
                value: i64,
                depth: u8,
            },
            MapNested {
                key: String,
            },
            MapSubdoc {
                key: String,
            },
            ArrayInsert {
                at: u32,
                values: Vec<i32>,
                text: String,
            },
            ArrayDelete {
                at: u32,
            },
            Xml {
                at: u32,
                tag: String,
                text: String,
            },
        }

        fn edit() -> impl Strategy<Value = Edit> {
            let key = "[a-z]{1,3}";
            prop_oneof![
                // Characters of one UTF-16 unit, so that every position is between characters.
                (any::<u32>(), "[a-zé中 \\n]{0,8}").prop_map(|(at, s)| Edit::Text { at, s }),
                (any::<u32>(), 1..6u32, key, any::<bool>())
                    .prop_map(|(at, len, key, on)| Edit::Format { at, len, key, on }),
                (any::<u32>(), 0..20u8).prop_map(|(at, depth)| Edit::Embed { at, depth }),
                (any::<u32>(), 1..4u32).prop_map(|(at, len)| Edit::DeleteText { at, len }),
                (key, any::<i64>(), 0..40u8).prop_map(|(key, value, depth)| Edit::MapSet {
                    key,
                    value,
                    depth
                }),
                key.prop_map(|key| Edit::MapNested { key }),
                key.prop_map(|key| Edit::MapSubdoc { key }),
                (
                    any::<u32>(),
                    prop::collection::vec(any::<i32>(), 1..4),
                    "\\PC{0,4}"
                )
                    .prop_map(|(at, values, text)| Edit::ArrayInsert {
                        at,
                        values,
                        text
                    }),
                any::<u32>().prop_map(|at| Edit::ArrayDelete { at }),
                (any::<u32>(), "[a-z]{1,4}", "\\PC{0,4}").prop_map(|(at, tag, text)| Edit::Xml {
                    at,
                    tag,
                    text
                }),
            ]
        }

        /// An `Any` nested `depth` deep, mixing every kind of value.
        fn nested(depth: u8, seed: i64) -> Any {
            let mut value = Any::from(vec![
                Any::Null,
                Any::Undefined,
                Any::Bool(seed % 2 == 0),
                Any::from(seed),
                Any::from(seed as f64 / 3.0),
                Any::from(seed.wrapping_mul(1 << 40) | 1),
                Any::from(format!("s{seed}")),
                Any::from(vec![seed as u8; 3]),
            ]);
            for level in 0..depth {
                value = if level % 2 == 0 {
                    Any::from(vec![value, Any::from(level as i64)])
                } else {
                    Any::from(std::collections::HashMap::from([(
                        format!("k{level}"),
                        value,
                    )]))
                };
            }
            value
        }

        fn apply(doc: &Doc, edit: &Edit) {
            let text = doc.get_or_insert_text("text");
            let map = doc.get_or_insert_map("map");
            let array = doc.get_or_insert_array("array");
            let xml = doc.get_or_insert_xml_fragment("xml");
            let mut txn = doc.transact_mut();
            let text_len = text.len(&txn);
            let array_len = array.len(&txn);
            match edit.clone() {
                Edit::Text { at, s } => text.insert(&mut txn, at % (text_len + 1), &s),
                Edit::Format { at, len, key, on } => {
                    if text_len > 0 {
                        let at = at % text_len;
                        let len = len.min(text_len - at);
                        let value = if on { Any::Bool(true) } else { Any::Null };
                        text.format(&mut txn, at, len, [(key.into(), value)].into());
                    }
                }
                Edit::Embed { at, depth } => {
                    text.insert_embed(&mut txn, at % (text_len + 1), nested(depth, at.into()));
                }
                Edit::DeleteText { at, len } => {
                    if text_len > 0 {
                        let at = at % text_len;
                        text.remove_range(&mut txn, at, len.min(text_len - at));
                    }
                }
                Edit::MapSet { key, value, depth } => {
                    map.insert(&mut txn, key, nested(depth, value));
                }
                Edit::MapNested { key } => {
                    let inner = map.insert(&mut txn, key, MapPrelim::default());
                    inner.insert(&mut txn, "x", "y");
                }
                Edit::MapSubdoc { key } => {
                    map.insert(&mut txn, key, Doc::new());
                }
                Edit::ArrayInsert { at, values, text } => {
                    let at = at % (array_len + 1);
                    array.insert_range(&mut txn, at, values);
                    array.insert(&mut txn, at, text);
                }
                Edit::ArrayDelete { at } => {
                    if array_len > 0 {
                        array.remove(&mut txn, at % array_len);
                    }
                }
                Edit::Xml { at, tag, text } => {
                    let len = xml.len(&txn);
                    let element =
                        xml.insert(&mut txn, at % (len + 1), XmlElementPrelim::empty(tag));
                    element.insert_attribute(&mut txn, "a", text.clone());
                    element.insert(&mut txn, 0, XmlTextPrelim::new(text));
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

            /// Every update yrs produces passes: each edit's own update, the whole state,
            /// diffs against older state vectors, and merges of edits from two peers.
            #[test]
            fn every_update_yrs_writes_passes(
                edits in prop::collection::vec((any::<bool>(), edit()), 1..40),
            ) {
                let docs = [utf16_doc(1), utf16_doc(0x1f_ffff_ffff_ffff)];
                let mut updates = Vec::new();
                let mut old_sv = StateVector::default();
                for (i, (which, edit)) in edits.iter().enumerate() {
                    let doc = &docs[usize::from(*which)];
                    let before = doc.transact().state_vector();
                    apply(doc, edit);
                    let update = doc.transact().encode_state_as_update_v1(&before);
                    prop_assert!(check(&update).is_ok(), "{:?}", edit);
                    let other = &docs[usize::from(!*which)];
                    other.transact_mut().apply_update(Update::decode_v1(&update).unwrap()).unwrap();
                    updates.push(update);
                    if i == edits.len() / 2 {
                        old_sv = docs[0].transact().state_vector();
                    }
                }
                for doc in &docs {
                    let txn = doc.transact();
                    prop_assert!(check(&txn.encode_state_as_update_v1(&StateVector::default())).is_ok());
                    prop_assert!(check(&txn.encode_state_as_update_v1(&old_sv)).is_ok());
                    prop_assert_eq!(check_state_vector(&txn.state_vector().encode_v1()), Ok(()));
                }
                let merged = yrs::merge_updates_v1(&updates).unwrap();
                prop_assert!(check(&merged).is_ok());
            }

            /// Whatever the bytes, the walker never panics, and what it accepts yrs decodes.
            #[test]
            fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
                if check(&bytes).is_ok() {
                    prop_assert!(Update::decode_v1(&bytes).is_ok());
                }
                if check_state_vector(&bytes).is_ok() {
                    prop_assert!(StateVector::decode_v1(&bytes).is_ok());
                }
            }
        }
    }
}
