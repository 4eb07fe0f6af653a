//! A minimal protobuf wire-format reader: enough to decode the requests the
//! core validates (and `google.protobuf.Struct` / `Value` as JSON) straight
//! from the bytes, with no generated code and no Python objects.
//!
//! `Struct` and `Value` nest without end on the wire, so their decoder is
//! bounded: it reads [`MAX_DEPTH`] levels and no more. A `Struct` or
//! `ListValue` past that is not read at all; it stands as an empty object or
//! array (so a nesting rule still sees a container at that level and names
//! where it is) and the decoder records that it cut the value. Recursion is
//! therefore at most two frames per level, whatever the input.

use serde_json::{Map, Number, Value};

use crate::error::{CoreError, ErrorKind};

/// The deepest `Struct` / `ListValue` the decoder reads, counting the
/// outermost one as level 1.
///
/// Python's protobuf runtime (upb) stops at 100 nested messages, and one
/// JSON level costs up to three (`Value`, `Struct`, its map entry): a value
/// of 20 levels, inside the deepest envelope the requests have (ten
/// messages, down to a profile location's latitude), is at most 71 deep, so
/// every request the core passes decodes in Python too.
pub const MAX_DEPTH: usize = 20;

#[cold]
pub(crate) fn malformed(what: &str) -> CoreError {
    CoreError::new(ErrorKind::MalformedRequest(format!(
        "the request bytes are not the expected message: {what}"
    )))
}

/// A minimal protobuf wire reader over a byte slice.
pub(crate) struct Wire<'a> {
    bytes: &'a [u8],
}

impl<'a> Wire<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn varint(&mut self) -> Result<u64, CoreError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self
                .bytes
                .split_first()
                .ok_or_else(|| malformed("truncated varint"))?;
            self.bytes = rest;
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(malformed("varint too long"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CoreError> {
        if n > self.bytes.len() {
            return Err(malformed("truncated field"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    /// The next field as (number, wire type, payload for length-delimited
    /// and fixed fields, or the varint value).
    pub(crate) fn field(&mut self) -> Result<Option<(u64, Field<'a>)>, CoreError> {
        if self.bytes.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        if key >> 3 == 0 {
            // Field number 0 is never valid; Python's decoder refuses it too.
            return Err(malformed("field number 0"));
        }
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => Field::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| malformed("length"))?;
                Field::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Field::Fixed32
            }
            // Groups (3, 4) are refused: none of these messages has one, and
            // an unknown group is the one thing Python's decoder would
            // recurse into without the core having looked.
            _ => return Err(malformed("unsupported wire type")),
        };
        Ok(Some((key >> 3, field)))
    }
}

pub(crate) enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    /// A 32-bit field: none of the fields read here, skipped.
    Fixed32,
    Bytes(&'a [u8]),
}

/// Calls `f(number, payload)` for every length-delimited field of a message
/// (strings, bytes, nested messages), skipping the other wire types.
pub(crate) fn each_message<'a>(
    bytes: &'a [u8],
    mut f: impl FnMut(u64, &'a [u8]) -> Result<(), CoreError>,
) -> Result<(), CoreError> {
    let mut wire = Wire::new(bytes);
    while let Some((number, field)) = wire.field()? {
        if let Field::Bytes(payload) = field {
            f(number, payload)?;
        }
    }
    Ok(())
}

/// Calls `f(number, field)` for every field of a message, of any wire type.
pub(crate) fn each_field<'a>(
    bytes: &'a [u8],
    mut f: impl FnMut(u64, Field<'a>) -> Result<(), CoreError>,
) -> Result<(), CoreError> {
    let mut wire = Wire::new(bytes);
    while let Some((number, field)) = wire.field()? {
        f(number, field)?;
    }
    Ok(())
}

pub(crate) fn string(bytes: &[u8]) -> Result<String, CoreError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| malformed("a string is not UTF-8"))
}

/// The decoder of `google.protobuf.Struct` / `Value` as JSON, bounded at
/// [`MAX_DEPTH`] levels. One per request: `cut` says whether any value of
/// the request went deeper.
#[derive(Debug, Default)]
pub(crate) struct Values {
    /// A `Struct` or `ListValue` past [`MAX_DEPTH`] was left unread.
    pub(crate) cut: bool,
}

impl Values {
    /// A `Struct` at JSON `level` (1 for an outermost one) as an object.
    pub(crate) fn decode_struct(
        &mut self,
        bytes: &[u8],
        level: usize,
    ) -> Result<Map<String, Value>, CoreError> {
        let mut map = Map::new();
        self.merge_struct(bytes, level, &mut map)?;
        Ok(map)
    }

    /// Adds a `Struct`'s entries to `map`, as protobuf merges a message
    /// field sent twice (a later key wins).
    pub(crate) fn merge_struct(
        &mut self,
        bytes: &[u8],
        level: usize,
        map: &mut Map<String, Value>,
    ) -> Result<(), CoreError> {
        if level > MAX_DEPTH {
            self.cut = true;
            return Ok(());
        }
        let mut wire = Wire::new(bytes);
        while let Some((number, field)) = wire.field()? {
            if let (1, Field::Bytes(entry)) = (number, field) {
                let mut key = String::new();
                let mut value = Value::Null;
                let mut entry = Wire::new(entry);
                while let Some((n, f)) = entry.field()? {
                    match (n, f) {
                        (1, Field::Bytes(b)) => key = string(b)?,
                        (2, Field::Bytes(b)) => value = self.decode_value(b, level + 1)?,
                        _ => {}
                    }
                }
                map.insert(key, value);
            }
        }
        Ok(())
    }

    /// A `Value` whose container, if it is one, sits at JSON `level`.
    pub(crate) fn decode_value(&mut self, bytes: &[u8], level: usize) -> Result<Value, CoreError> {
        let mut value = Value::Null;
        let mut wire = Wire::new(bytes);
        while let Some((number, field)) = wire.field()? {
            value = match (number, field) {
                (1, Field::Varint(_)) => Value::Null,
                (2, Field::Fixed64(bits)) => {
                    Number::from_f64(f64::from_bits(bits)).map_or(Value::Null, Value::Number)
                }
                (3, Field::Bytes(b)) => Value::String(string(b)?),
                (4, Field::Varint(v)) => Value::Bool(v != 0),
                (5, Field::Bytes(b)) => {
                    // The oneof's message sent twice merges, as protobuf does.
                    let mut map = match value {
                        Value::Object(map) => map,
                        _ => Map::new(),
                    };
                    self.merge_struct(b, level, &mut map)?;
                    Value::Object(map)
                }
                (6, Field::Bytes(b)) => {
                    let mut items = match value {
                        Value::Array(items) => items,
                        _ => Vec::new(),
                    };
                    if level > MAX_DEPTH {
                        self.cut = true;
                    } else {
                        let mut list = Wire::new(b);
                        while let Some((n, f)) = list.field()? {
                            if let (1, Field::Bytes(item)) = (n, f) {
                                items.push(self.decode_value(item, level + 1)?);
                            }
                        }
                    }
                    Value::Array(items)
                }
                _ => value,
            };
        }
        Ok(value)
    }
}

/// The JSON level of the deepest container in `value` (0 for a scalar, 1
/// for a flat object or array). Bounded like the decoder that built it.
#[must_use]
pub(crate) fn depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A length-delimited field.
    pub(crate) fn ld(number: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = varint((number << 3) | 2);
        out.extend(varint(payload.len() as u64));
        out.extend_from_slice(payload);
        out
    }

    pub(crate) fn varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            if v < 0x80 {
                out.push(v as u8);
                return out;
            }
            out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
    }

    /// A `Value` holding a string.
    pub(crate) fn string_value(s: &str) -> Vec<u8> {
        ld(3, s.as_bytes())
    }

    /// A `Struct` with one entry.
    pub(crate) fn struct_of(key: &str, value: &[u8]) -> Vec<u8> {
        let mut entry = ld(1, key.as_bytes());
        entry.extend(ld(2, value));
        ld(1, &entry)
    }

    /// A `Value` that is `levels` objects `{"n": {"n": ... "x"}}` deep,
    /// alternating with lists when `lists` is set.
    pub(crate) fn nested(levels: usize, lists: bool) -> Vec<u8> {
        let mut value = string_value("x");
        for i in 0..levels {
            value = if lists && i % 2 == 1 {
                ld(6, &ld(1, &value))
            } else {
                ld(5, &struct_of("n", &value))
            };
        }
        value
    }

    /// A `Value` of lists in lists, `bytes` long: built back to front, so
    /// in linear time.
    pub(crate) fn deep_list(bytes: usize) -> Vec<u8> {
        let mut reversed: Vec<u8> = string_value("x").into_iter().rev().collect();
        while reversed.len() < bytes {
            // ListValue { values: <inner> } inside Value { list_value }.
            for number in [1, 6] {
                let mut header = varint((number << 3) | 2);
                header.extend(varint(reversed.len() as u64));
                reversed.extend(header.into_iter().rev());
            }
        }
        reversed.reverse();
        reversed
    }

    #[test]
    fn values_up_to_the_limit_decode_whole() {
        let mut values = Values::default();
        let v = values.decode_value(&nested(MAX_DEPTH, true), 1).unwrap();
        assert!(!values.cut);
        assert_eq!(depth(&v), MAX_DEPTH);
    }

    #[test]
    fn deeper_values_are_cut_to_an_empty_container_at_the_next_level() {
        for lists in [false, true] {
            let mut values = Values::default();
            let v = values
                .decode_value(&nested(MAX_DEPTH + 5, lists), 1)
                .unwrap();
            assert!(values.cut);
            assert_eq!(depth(&v), MAX_DEPTH + 1);
        }
    }

    #[test]
    fn a_value_nested_through_five_megabytes_is_read_without_recursing() {
        // About 1.2 million levels: unbounded recursion would overflow the
        // stack many times over.
        let value = deep_list(5 * 1024 * 1024);
        let mut values = Values::default();
        assert!(values.decode_value(&value, 1).is_ok());
        assert!(values.cut);
    }

    #[test]
    fn a_struct_sent_twice_merges() {
        let mut first = struct_of("a", &string_value("1"));
        first.extend(struct_of("b", &string_value("2")));
        let mut bytes = ld(5, &first);
        bytes.extend(ld(5, &struct_of("a", &string_value("3"))));
        let v = Values::default().decode_value(&bytes, 1).unwrap();
        assert_eq!(v, serde_json::json!({"a": "3", "b": "2"}));
    }

    #[test]
    fn groups_and_field_zero_are_malformed() {
        assert!(Values::default().decode_value(&[0x0b], 1).is_err());
        assert!(Values::default().decode_value(&[0x02, 0x00], 1).is_err());
    }
}
